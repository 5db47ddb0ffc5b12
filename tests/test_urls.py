"""normalize_url: one absolute, percent-encoded http(s) URI out of whatever a file gives."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedsvc.content.urls import _NORMAL, normalize_url, rebuild_url

# RFC 3986 appendix A, for the parts after the authority: pchar, "/" and "?" only.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_PATH = re.compile(rf"(?:/{_PCHAR}*)*")
_QUERY_OR_FRAGMENT = re.compile(rf"(?:{_PCHAR}|[/?])*")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/news/two  spaces", "https://example.com/news/two%20%20spaces"),
        ("https://example.com/?q=a b", "https://example.com/?q=a%20b"),
        ("https://example.com/x#frag ment", "https://example.com/x#frag%20ment"),
    ],
)
def test_spaces_are_percent_encoded(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/café", "https://example.com/caf%C3%A9"),
        ("https://example.com/€", "https://example.com/%E2%82%AC"),
        ("https://example.com/日本", "https://example.com/%E6%97%A5%E6%9C%AC"),
        ("https://example.com/?q=naïve", "https://example.com/?q=na%C3%AFve"),
        ("https://example.com/\u00a0x", "https://example.com/%C2%A0x"),
    ],
)
def test_non_ascii_is_percent_encoded_as_utf8(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "https://example.com/a%20b",
        "https://example.com/caf%C3%A9",
        "https://example.com/%e2%82%ac",
        "https://example.com/a%2Fb",
        "https://example.com/?q=%3D%26",
    ],
)
def test_existing_escapes_are_not_encoded_twice(raw):
    assert normalize_url(raw) == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/100%", "https://example.com/100%25"),
        ("https://example.com/100%-off", "https://example.com/100%25-off"),
        ("https://example.com/a%zz", "https://example.com/a%25zz"),
        ("https://example.com/a%2", "https://example.com/a%252"),
        ("https://example.com/?discount=50%", "https://example.com/?discount=50%25"),
    ],
)
def test_lone_percent_is_encoded(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://bücher.de/x", "https://xn--bcher-kva.de/x"),
        ("https://BÜCHER.de/x", "https://xn--bcher-kva.de/x"),
        ("http://例え.jp/", "http://xn--r8jz45g.jp/"),
        ("https://xn--bcher-kva.de/x", "https://xn--bcher-kva.de/x"),
    ],
)
def test_international_host_is_idna_encoded(raw, expected):
    assert normalize_url(raw) == expected


def test_invalid_idna_host_is_rejected():
    with pytest.raises(ValueError, match="invalid host name"):
        normalize_url("https://a..b/")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://[::1]/x", "http://[::1]/x"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("https://[2001:db8::1]/feed", "https://[2001:db8::1]/feed"),
    ],
)
def test_ipv6_literal_is_kept_in_brackets(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Example.COM/Path", "https://example.com/Path"),
        ("https://example.com", "https://example.com/"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://user:pa ss@example.com/", "https://user:pa%20ss@example.com/"),
    ],
)
def test_scheme_and_host_are_lowercased_and_empty_path_becomes_slash(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/file",
        "mailto:someone@example.com",
        "/relative/path",
        "relative/path",
        "example.com/no-scheme",
        "//example.com/scheme-relative",
        "https://",
        "http:///only-a-path",
    ],
)
def test_non_http_or_relative_urls_are_rejected(raw):
    with pytest.raises(ValueError, match="not an absolute http"):
        normalize_url(raw)


@pytest.mark.parametrize(
    "raw", ["", "   ", "\n", None, 42, 4.2, True, b"https://example.com/", ["https://example.com/"]]
)
def test_empty_or_non_string_is_rejected(raw):
    with pytest.raises(ValueError, match=r"must be an absolute http\(s\) URL"):
        normalize_url(raw)


@pytest.mark.parametrize(
    "raw", ["https://example.com:99999/", "https://example.com:abc/", "https://example.com:-1/", "http://[::1]:x/"]
)
def test_invalid_port_is_rejected(raw):
    with pytest.raises(ValueError, match="invalid port"):
        normalize_url(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "https://example.com/a b",
        "https://bücher.de/café?q=é#é",
        "https://example.com/100%",
        "https://example.com/a%2",
        "http://[::1]:8080/x y",
        "HTTPS://Example.com",
    ],
)
def test_normalizing_twice_equals_normalizing_once(raw):
    once = normalize_url(raw)
    assert normalize_url(once) == once


@given(st.lists(st.text(), min_size=1, max_size=4), st.text(), st.text())
def test_normalize_is_idempotent_for_any_path_query_and_fragment(segments, query, fragment):
    once = normalize_url("https://example.com/" + "/".join(segments) + "?" + query + "#" + fragment)
    assert normalize_url(once) == once


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_output_has_no_whitespace_or_non_ascii_for_any_path(segments):
    result = normalize_url("https://example.com/" + "/".join(segments))
    assert result.startswith("https://example.com/")
    assert all(33 <= ord(c) <= 126 for c in result), result


@pytest.mark.parametrize("raw", ["https://exa mple.com/", "https://exa<mple.com/", "https://exa\u3000mple.com/"])
def test_host_with_space_or_unsafe_character_is_rejected(raw):
    with pytest.raises(ValueError):
        normalize_url(raw)


def _follows_rfc3986(url: str) -> bool:
    """Whether path, query and fragment of an https://example.com URL match RFC 3986's grammar."""
    parts = re.fullmatch(r"https://example\.com(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?", url)
    return bool(
        parts
        and _PATH.fullmatch(parts["path"])
        and _QUERY_OR_FRAGMENT.fullmatch(parts["query"] or "")
        and _QUERY_OR_FRAGMENT.fullmatch(parts["fragment"] or "")
    )


@pytest.mark.parametrize(
    "raw", ["https://example.com/a b?q=é#x y", "https://example.com/100%?<>", 'https://example.com/{x}|^`\\"y']
)
def test_unsafe_characters_are_encoded_to_rfc3986_grammar(raw):
    assert _follows_rfc3986(normalize_url(raw))


@pytest.mark.parametrize("url", ["https://example.com/a[1]", "https://example.com/x#a#b"])
def test_rfc3986_grammar_helper_rejects_raw_brackets_and_second_hash(url):
    assert not _follows_rfc3986(url)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/a[1]", "https://example.com/a%5B1%5D"),
        ("https://example.com/?a[]=1", "https://example.com/?a%5B%5D=1"),
        ("https://example.com/x#a#b", "https://example.com/x#a%23b"),
    ],
)
def test_brackets_and_hash_are_encoded_outside_the_host(raw, expected):
    result = normalize_url(raw)
    assert result == expected
    assert _follows_rfc3986(result)


@given(st.lists(st.text(), min_size=1, max_size=4), st.text(), st.text())
def test_output_follows_rfc3986_grammar_for_any_path_query_and_fragment(segments, query, fragment):
    assert _follows_rfc3986(normalize_url("https://example.com/" + "/".join(segments) + "?" + query + "#" + fragment))


# --- already normal URLs are returned as they are, as rebuilding them would give them ----------


def outcome(normalize, raw: str) -> str:
    """What `normalize` makes of `raw`, or its error."""
    try:
        return normalize(raw)
    except ValueError as exc:
        return f"ValueError: {exc}"


@pytest.mark.parametrize(
    "raw",
    ["https://e.com/a%20b", "http://e.com/%2F?q=%3D%26&x=?/", "https://" + "a" * 63 + ".com/%41", "https://e.com/%e2",
     "https://a-b.c0.com/x%41?", "https://" + "a" * 64 + ".com/%41", "https://e.com/%4", "https://e.com/%zz",
     "https://E.com/%41", "https://e.com:80/%41", "https://u@e.com/%41", "https://e.com/%41#f", "https://e.com/%41 x",
     "https://e.com./%41", "https://e.com/%41?", "https://e.com/x?", "https://e.com?", "https://" + "a" * 64 + ".com/x",
     "https://" + "a" * 64 + ".com", "https://e.com"],
    ids=lambda raw: raw[:50],
)  # fmt: skip
def test_normal_url_is_what_rebuilding_gives(raw):
    assert outcome(normalize_url, raw) == outcome(rebuild_url, raw)


_URL_PIECES = st.sampled_from(
    ["a", "Z", "0", "-", ".", "_", "~", "!", "$", "&", "'", "(", "*", ",", ";", "=", ":", "@", "/", "?", "%", "%20",
     "%2f", "%zz", "#", "[", " ", "é"]
)  # fmt: skip


@given(
    st.sampled_from(["https://", "http://", "HTTP://"]),
    st.sampled_from(["e.com", "x", "a-b.c0", "a" * 63 + ".c", "a" * 64 + ".c", "A.com", "a..com", "-a.com", "e.com."]),
    st.lists(_URL_PIECES, max_size=10).map("".join),
)
def test_any_url_taken_as_normal_is_what_rebuilding_gives(scheme, host, rest):
    raw = f"{scheme}{host}/{rest}"
    if _NORMAL.fullmatch(raw):
        assert rebuild_url(raw) == raw
