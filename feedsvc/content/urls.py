"""URL checks and normalisation: every URL goes out as one valid URI (RFC 3986)."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

# RFC 3986 sections 3.2.1-3.5: what each component may hold unencoded (unreserved and
# sub-delims, plus ":@/" in a path and also "?" in a query or fragment). "%" is kept so that
# an already encoded URL is not encoded twice, which would change its entry id.
_SUB_DELIMS = "!$&'()*+,;="
_USERINFO_SAFE = _SUB_DELIMS + ":%"
_PATH_SAFE = _SUB_DELIMS + ":@/%"
_QUERY_SAFE = _PATH_SAFE + "?"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 3.2.2 reg-name after IDNA (RFC 5890): letters, digits, hyphens and dots only.
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?")


# The common case, already a normalised URI: lower-case scheme and host (labels of at most 63
# characters, which the IDNA codec requires), no port, "#" or brackets, every "%" the start of an
# escape, no empty query (urlunsplit drops a final "?"): it is returned as `rebuild_url` would
# give it, without the cost of splitting and re-encoding.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NORMAL = re.compile(
    rf"https?://{_LABEL}(?:\.{_LABEL})*(/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{{2}})*)?(?<!\?)"
)


def normalize_url(raw: object) -> str:
    """Return `raw` as an absolute http(s) URI, percent-encoded; raise ValueError if it is not one."""
    if isinstance(raw, str) and (match := _NORMAL.fullmatch(raw)):
        return raw if match.group(1) else raw + "/"
    return rebuild_url(raw)


def rebuild_url(raw: object) -> str:
    """`raw` split, checked and put together again percent-encoded (the general path)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be an absolute http(s) URL, e.g. https://example.com/story")
    parts = urlsplit(raw.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shorten(raw.strip())} is not an absolute http(s) URL")
    netloc = _netloc(parts, _ascii_host(parts.hostname, raw.strip()))
    path = _encode(parts.path, _PATH_SAFE) or "/"
    query, fragment = _encode(parts.query, _QUERY_SAFE), _encode(parts.fragment, _QUERY_SAFE)
    return urlunsplit((parts.scheme.lower(), netloc, path, query, fragment))


def shorten(text: str, limit: int = 80) -> str:
    """The repr of a possibly huge string, cut (after quoting) to `limit` characters for a message."""
    quoted = repr(text[:limit])
    return quoted if len(quoted) <= limit and len(text) <= limit else quoted[: limit - 3] + "..."


def _ascii_host(host: str, raw: str) -> str:
    """IDNA-encode a host name (RFC 3490); keep IP literals as they are."""
    if ":" in host:
        return f"[{host}]"
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"{shorten(raw)} has an invalid host name ({exc})") from None
    if not _HOST.fullmatch(ascii_host):
        raise ValueError(f"{shorten(raw)} has an invalid host name: use letters, digits, '-' and '.'")
    return ascii_host


def _netloc(parts, host: str) -> str:
    """Rebuild user info, host (RFC 3490 IDNA) and port; an invalid port is an error."""
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{shorten(parts.geturl())} has an invalid port") from None
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{_encode(userinfo, _USERINFO_SAFE)}@{host}" if userinfo else host
    return f"{netloc}:{port}" if port is not None else netloc


def _encode(component: str, safe: str) -> str:
    """Percent-encode spaces, non-ASCII and other characters not `safe` here, as UTF-8."""
    return _LONE_PERCENT.sub("%25", quote(component, safe=safe))
