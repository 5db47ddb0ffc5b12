"""Hostile, broken and merely odd article files: each broken one is skipped with a precise
reason (in load_folder, /healthz and `feedsvc check`), odd ones load, and every good article
keeps serving in feeds that stay valid."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import feedparser
import lxml.etree
import lxml.html
import pytest
import yaml
from helpers import ATOM, PROJECT, SEEDS, article_fields, check_feed, front_matter

from feedsvc.cli import main
from feedsvc.content.fields import Limits
from feedsvc.content.files import load_bytes
from feedsvc.content.frontmatter import split_front_matter
from feedsvc.content.model import Problem
from feedsvc.content.yamlload import MAX_DEPTH, MAX_NODES, nesting_bound
from feedsvc.errors import ArticleError
from feedsvc.feeds.catalog import topic_slug
from feedsvc.runtime.loader import load_folder

SEED_URLS = {yaml.safe_load(p.read_text(encoding="utf-8").split("---\n")[1])["webUrl"] for p in SEEDS.iterdir()}
FIELDS = "webUrl: https://example.com/x\npublishedDateTime: 2021-01-01\n"


def doc(*lines: str) -> bytes:
    """An article file made of these lines, LF-terminated."""
    return ("\n".join(lines) + "\n").encode("utf-8")


def billion_laughs(levels: int = 9) -> str:
    """YAML whose aliases expand to 9**levels strings while the text stays tiny."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines)


# (file name, bytes, expected line, expected message). Each is skipped; the message is exact
# unless it ends with "...", when it is the start of the message (feedsvc's words; the rest is the
# YAML library's, whose wording is its own). ANY_LINE: some line of the file.
ANY_LINE = -1
BROKEN = [
    ("bad-indent.md", doc("---", "title: ok", "  bad: indent: here", "---"), 3, "invalid YAML: ..."),
    (
        "unclosed-flow.md",
        doc("---", "title: ok", "webUrl: [x", "publishedDateTime: 2021-01-01", "---"),
        4,
        "invalid YAML: ...",
    ),
    ("no-front-matter.md", doc("title: no dashes", FIELDS), 1, "no front matter: the first line must be '---'"),
    (
        "unclosed.md",
        doc("---", "title: never closed", FIELDS),
        1,
        "front matter is not closed: add a '---' line after the last field",
    ),
    (
        "root-list.md",
        doc("---", "- title", "- webUrl", "---"),
        None,
        "front matter must be a mapping of fields (title: ..., webUrl: ...)",
    ),
    (
        "root-scalar.md",
        doc("---", "just a sentence", "---"),
        None,
        "front matter must be a mapping of fields (title: ..., webUrl: ...)",
    ),
    ("empty.md", b"", 1, "no front matter: the first line must be '---'"),
    ("only-bom.md", b"\xef\xbb\xbf", 1, "no front matter: the first line must be '---'"),
    (
        "empty-front-matter.md",
        doc("---", "---"),
        None,
        "front matter must be a mapping of fields (title: ..., webUrl: ...)",
    ),
    ("no-title.md", doc("---", FIELDS + "---"), None, "title is missing: add 'title: \"...\"' to the front matter"),
    ("title-list.md", doc("---", "title: [a, b]", FIELDS + "---"), 2, "title must be text, not a list"),
    ("title-map.md", doc("---", "title: {a: b}", FIELDS + "---"), 2, "title must be text, not a dict"),
    ("title-bool.md", doc("---", "title: yes", FIELDS + "---"), 2, "title must be text, not a bool"),
    ("title-empty.md", doc("---", 'title: ""', FIELDS + "---"), 2, "title is empty: give the article a title"),
    (
        "title-only-tags.md",
        doc("---", 'title: "<b> </b><script>x</script>"', FIELDS + "---"),
        2,
        "title is empty: give the article a title",
    ),
    (
        "bad-date.md",
        doc("---", "title: t", "webUrl: https://example.com/x", 'publishedDateTime: "next tuesday"', "---"),
        4,
        "publishedDateTime 'next tuesday' is not a date: use ISO 8601, e.g. 2021-01-13T23:56:00Z",
    ),
    (
        "date-no-year.md",
        doc("---", "title: t", "webUrl: https://example.com/x", 'publishedDateTime: "13 January"', "---"),
        4,
        "publishedDateTime '13 January' is not a date: use ISO 8601, e.g. 2021-01-13T23:56:00Z",
    ),
    (
        "impossible-date.md",
        doc("---", "title: t", "webUrl: https://example.com/x", "publishedDateTime: 2021-02-30", "---"),
        None,
        "invalid YAML value: ...",
    ),
    (
        "no-date.md",
        doc("---", "title: t", "webUrl: https://example.com/x", "---"),
        None,
        "publishedDateTime is missing: add 'publishedDateTime: 2021-01-13T23:56:00Z'",
    ),
    (
        "javascript-url.md",
        doc("---", "title: t", 'webUrl: "javascript:alert(1)"', "publishedDateTime: 2021-01-01", "---"),
        3,
        "webUrl 'javascript:alert(1)' is not an absolute http(s) URL",
    ),
    (
        "data-url.md",
        doc("---", "title: t", 'webUrl: "data:text/html,<script>x</script>"', "publishedDateTime: 2021-01-01", "---"),
        3,
        "webUrl 'data:text/html,<script>x</script>' is not an absolute http(s) URL",
    ),
    (
        "relative-url.md",
        doc("---", "title: t", "webUrl: /news/story", "publishedDateTime: 2021-01-01", "---"),
        3,
        "webUrl '/news/story' is not an absolute http(s) URL",
    ),
    (
        "no-host-url.md",
        doc("---", "title: t", "publishedDateTime: 2021-01-01", "webUrl: https:///story", "---"),
        4,
        "webUrl 'https:///story' is not an absolute http(s) URL",
    ),
    (
        "ftp-url.md",
        doc("---", "title: t", "webUrl: ftp://example.com/x", "publishedDateTime: 2021-01-01", "---"),
        3,
        "webUrl 'ftp://example.com/x' is not an absolute http(s) URL",
    ),
    (
        "no-url.md",
        doc("---", "title: t", "publishedDateTime: 2021-01-01", "---"),
        None,
        "webUrl is missing: add 'webUrl: \"https://...\"' to the front matter",
    ),
    (
        "latin1.md",
        "---\ntitle: café\n---\n".encode("latin-1"),
        None,
        "not UTF-8 text (byte 14): save the file as UTF-8",
    ),
    ("utf16.md", "---\ntitle: t\n---\n".encode("utf-16"), None, "not UTF-8 text (byte 0): save the file as UTF-8"),
    (
        "nested-title.md",
        doc("---", "title: " + "[" * 2000 + "x" + "]" * 2000, FIELDS + "---"),
        None,
        f"front matter nests deeper than {MAX_DEPTH} levels: flatten it",
    ),
    (
        "alias-bomb.md",
        doc("---", "title: t", FIELDS + billion_laughs(), "---"),
        ANY_LINE,
        f"front matter expands to over {MAX_NODES} values (YAML aliases?): simplify it",
    ),
]


def matches(message: str, expected: str) -> bool:
    return message.startswith(expected[:-3]) if expected.endswith("...") else message == expected


def line_ok(line: int | None, expected: int | None, data: bytes) -> bool:
    if expected == ANY_LINE:
        return line is not None and 1 <= line <= data.count(b"\n")
    return line == expected


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def served_urls(client, fmt: str = "atom", path: str = "") -> list[str]:
    """The entry URLs of a feed with every article (include=all), checked valid."""
    response = client.get(f"{path}/{fmt}.xml?include=all&limit=500")
    assert response.status_code == 200, response.data
    root = check_feed(fmt, response.data)
    if fmt == "rss":
        return [i.findtext("link") for i in root.iter("item")]
    return [
        l.get("href")
        for e in root.iter(f"{ATOM}entry")
        for l in e.findall(f"{ATOM}link")
        if l.get("rel") in (None, "alternate")
    ]


# --- each broken file: skipped, with its reason and line ------------------------------------------


@pytest.mark.parametrize(("name", "data", "line", "message"), BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_file_is_skipped_with_a_precise_reason(seeds_dir, name, data, line, message):
    write(seeds_dir, name, data)
    result = load_folder(seeds_dir)
    assert {a.url for a in result.articles} == SEED_URLS
    (problem,) = result.problems
    assert (problem.path, problem.severity) == (name, "error")
    assert line_ok(problem.line, line, data), problem.line
    assert matches(problem.message, message), problem.message


@pytest.mark.parametrize(("name", "data", "line", "message"), BROKEN, ids=[case[0] for case in BROKEN])
def test_load_bytes_raises_article_error_naming_the_file(name, data, line, message):
    with pytest.raises(ArticleError) as caught:
        load_bytes(data, f"sub/{name}")
    assert caught.value.path == f"sub/{name}"
    assert matches(caught.value.reason, message), caught.value.reason


def test_every_broken_file_at_once_leaves_every_good_article_serving(seeds_dir, write_article, make_client, capsys):
    for name, data, _, _ in BROKEN:
        write(seeds_dir, name, data)
    write_article("good.md", webUrl="https://example.com/good", topics=["Testing"])
    client = make_client()
    for fmt in ("rss", "atom"):
        assert set(served_urls(client, fmt)) >= SEED_URLS | {"https://example.com/good"}
        assert served_urls(client, fmt, "/topics/testing") == ["https://example.com/good"]
    feed = json.loads(client.get("/feed.json?include=all&limit=500").data)
    assert {i["url"] for i in feed["items"]} >= SEED_URLS | {"https://example.com/good"}
    health = client.get("/healthz").get_json()
    assert health["articles"] == len(SEED_URLS) + 1
    skipped = {s["path"]: (s["line"], s["reason"]) for s in health["skipped"]}
    assert set(skipped) == {case[0] for case in BROKEN}
    for name, data, line, message in BROKEN:
        assert line_ok(skipped[name][0], line, data) and matches(skipped[name][1], message), (name, skipped[name])
    assert main(["check", str(seeds_dir)]) == 1
    out, err = capsys.readouterr()
    printed = out.splitlines()
    assert len(printed) == len(BROKEN)
    for name, data, line, message in BROKEN:
        (printed_line,) = [p for p in printed if p.startswith((f"{name}: ", f"{name}:"))]
        where, rest = printed_line.split(": error: ", 1)
        number = int(where.removeprefix(f"{name}:")) if where != name else None
        assert line_ok(number, line, data) and matches(rest, message), printed_line
    assert f"{len(SEED_URLS) + 1} articles, {len(BROKEN)} files skipped, {len(BROKEN)} errors, " in err


# --- unsafe YAML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
        '!!python/object/new:os.system ["touch {marker}"]',
        '!python/object/apply:os.system ["touch {marker}"]',
    ],
)
@pytest.mark.parametrize("field", ["title", "secured", "unknownKey"])
def test_python_tags_never_run_anywhere_in_the_file(seeds_dir, tmp_path, make_client, value, field):
    marker = tmp_path / "pwned"
    fields = {"title": "t", "webUrl": "https://example.com/evil", "publishedDateTime": "2021-01-01"}
    lines = [f"{k}: {value.format(marker=marker) if k == field else v}" for k, v in fields.items()]
    if field not in fields:
        lines.append(f"{field}: {value.format(marker=marker)}")
    write(seeds_dir, "evil.md", doc("---", *lines, "---"))
    result = load_folder(seeds_dir)
    (problem,) = result.problems
    assert problem.path == "evil.md" and problem.severity == "error"
    assert problem.line == 2 + [ln.split(":")[0] for ln in lines].index(field)
    assert "is not allowed" in problem.message and "python/object" in problem.message
    make_client().get("/atom.xml?include=all")
    assert main(["check", str(seeds_dir)]) == 1
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly_with_a_reason_about_aliases(seeds_dir, capsys):
    write(seeds_dir, "bomb.md", doc("---", "title: t", FIELDS + billion_laughs(12), "---"))
    started = time.monotonic()
    result = load_folder(seeds_dir)
    assert time.monotonic() - started < 2.0
    (problem,) = result.problems
    assert problem.path == "bomb.md" and problem.severity == "error"
    assert "aliases" in problem.message
    started = time.monotonic()
    assert main(["check", str(seeds_dir)]) == 1
    assert time.monotonic() - started < 2.0
    assert "bomb.md:" in capsys.readouterr().out


def test_alias_bomb_in_an_unread_key_is_refused_too(seeds_dir):
    write(
        seeds_dir,
        "bomb.md",
        doc("---", "title: t", FIELDS + "secured:", "  " + billion_laughs().replace("\n", "\n  "), "---"),
    )
    (problem,) = load_folder(seeds_dir).problems
    assert "aliases" in problem.message


def test_modest_aliases_are_fine(seeds_dir):
    write(
        seeds_dir,
        "alias.md",
        doc("---", "title: &t Shared title", FIELDS + "topics: [*t, Other]", "published: true", "---"),
    )
    (article,) = [a for a in load_folder(seeds_dir).articles if a.path == "alias.md"]
    assert article.topics == ("Shared title", "Other")


DEEP = {
    "flow": lambda n: "junk: " + "[" * n + "]" * n,
    "compact-block": lambda n: "junk:\n" + "- " * n + "x",
    "indented-block": lambda n: "junk:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, n)) + " " * n + "x",
}


@pytest.mark.parametrize("kind", DEEP)
def test_nesting_past_feedsvcs_own_limit_is_refused_even_under_an_unread_key(seeds_dir, kind):
    # feedsvc's limit, checked on the text before any parser sees it: the same answer whatever
    # YAML library (and release of it) is installed.
    write(seeds_dir, "deep.md", doc("---", "title: t", FIELDS + DEEP[kind](MAX_DEPTH + 1), "---"))
    result = load_folder(seeds_dir)
    assert [(p.path, p.message) for p in result.problems] == [
        ("deep.md", f"front matter nests deeper than {MAX_DEPTH} levels: flatten it")
    ]
    assert "https://example.com/x" not in {a.url for a in result.articles}


@pytest.mark.parametrize("kind", DEEP)
def test_nesting_well_within_the_limit_under_an_unread_key_does_not_stop_the_article(seeds_dir, kind):
    write(seeds_dir, "deep.md", doc("---", "title: t", FIELDS + DEEP[kind](MAX_DEPTH // 10), "---"))
    result = load_folder(seeds_dir)
    assert result.problems == ()
    assert "https://example.com/x" in {a.url for a in result.articles}


def test_real_articles_nest_far_below_the_limit(read_only_folders):
    for path in [*(read_only_folders / "seeds").iterdir(), *(read_only_folders / "corpus").iterdir()]:
        source, _ = split_front_matter(path.read_text(encoding="utf-8"), path.name)
        assert nesting_bound(source) <= MAX_DEPTH // 3, path.name


def run_check(folder: Path, timeout: float) -> subprocess.CompletedProcess:
    """`feedsvc check folder` in a child process (a crash or a hang cannot take pytest with it)."""
    return subprocess.run(
        [sys.executable, "-m", "feedsvc.cli", "check", str(folder)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT,
    )


@pytest.mark.parametrize("kind", DEEP)
def test_very_deep_nesting_is_skipped_not_a_crash(tmp_path, kind):
    # 100,000 levels of "- " overflowed libyaml 0.2.5's C stack (SIGSEGV) under PyYAML 6.0-6.0.3.
    folder = tmp_path / "deep"
    levels = 1_000 if kind == "indented-block" else 100_000  # indentation: n levels take n*n/2 bytes
    write(folder, "deep.md", doc("---", "title: t", FIELDS + DEEP[kind](levels), "---"))
    done = run_check(folder, timeout=60)
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    assert done.stdout.startswith("deep.md")


@pytest.mark.parametrize(
    "title",
    ["<a " * 300_000, "<!--" * 200_000, "<x" * 400_000, "&" * 800_000, "<script></script>" * 50_000, "â€™x " * 90_000],
    ids=["unclosed-tags", "comments", "lt-letters", "ampersands", "scripts", "mojibake"],
)
def test_markup_heavy_title_loads_in_bounded_time(seeds_dir, title):
    # Just under the 1 MB file limit; html.parser once took minutes on the first of these.
    data = doc("---", "title: " + json.dumps(title, ensure_ascii=False), FIELDS + "---")
    assert 700_000 < len(data) < 1_000_000
    write(seeds_dir, "slow.md", data)
    started = time.monotonic()
    result = load_folder(seeds_dir)
    assert time.monotonic() - started < 5.0
    articles = [a for a in result.articles if a.path == "slow.md"]
    problems = [p for p in result.problems if p.path == "slow.md"]
    assert len(articles) + len(problems) >= 1
    assert all(p.message == "title is empty: give the article a title" for p in problems), problems
    assert all(0 < len(a.title) <= 300 for a in articles)


# --- size limit ----------------------------------------------------------------------------------


def test_file_over_the_size_limit_is_skipped(seeds_dir):
    limit = max(p.stat().st_size for p in SEEDS.iterdir()) + 100
    write(seeds_dir, "big.md", front_matter(**article_fields(excerpt="x" * limit)).encode())
    write(seeds_dir, "exact.md", front_matter(**article_fields(webUrl="https://example.com/exact")).encode())
    result = load_folder(seeds_dir, Limits(file_bytes=limit))
    assert {a.url for a in result.articles} == SEED_URLS | {"https://example.com/exact"}
    assert result.problems == (
        Problem("big.md", f"file is over the size limit of {limit} bytes (MAX_FILE_BYTES): split or trim it", "error"),
    )


def test_file_of_exactly_the_limit_loads(seeds_dir):
    data = front_matter(**article_fields(webUrl="https://example.com/exact")).encode()
    write(seeds_dir, "exact.md", data)
    limit = max(len(data), *(p.stat().st_size for p in SEEDS.iterdir()))
    result = load_folder(seeds_dir, Limits(file_bytes=limit))
    assert result.problems == ()
    result = load_folder(seeds_dir, Limits(file_bytes=len(data) - 1))
    assert "exact.md" in {p.path for p in result.skipped}


def test_size_limit_from_app_config(seeds_dir, write_article, make_client):
    limit = max(p.stat().st_size for p in SEEDS.iterdir()) + 100
    write_article("big.md", excerpt="word " * limit, webUrl="https://example.com/big")
    write_article("small.md", webUrl="https://example.com/small")
    client = make_client(MAX_FILE_BYTES=limit)
    assert set(served_urls(client)) >= SEED_URLS | {"https://example.com/small"}
    assert "https://example.com/big" not in served_urls(client)
    (skipped,) = client.get("/healthz").get_json()["skipped"]
    assert skipped["path"] == "big.md"
    assert skipped["reason"].startswith(f"file is over the size limit of {limit} bytes")


# --- odd but meaningful files load ---------------------------------------------------------------


def loaded(seeds_dir: Path, name: str):
    result = load_folder(seeds_dir)
    (article,) = [a for a in result.articles if a.path == name]
    return article, [p for p in result.problems if p.path == name]


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + front_matter(**article_fields(title="Odd")).encode(),
        front_matter(**article_fields(title="Odd")).replace("\n", "\r\n").encode(),
        b"\xef\xbb\xbf" + front_matter(**article_fields(title="Odd")).replace("\n", "\r\n").encode(),
        front_matter(**article_fields(title="Odd")).replace("\n", "\r").encode(),
        front_matter(**article_fields(title="Odd")).replace("---\n", "---   \n").encode(),
        (front_matter(**article_fields(title="Odd")) + "\nbody text\n---\nmore\n").encode(),
    ],
    ids=["bom", "crlf", "bom-crlf", "cr", "trailing-spaces", "body-with-dashes"],
)
def test_encodings_and_line_ends_load(seeds_dir, data):
    write(seeds_dir, "odd.md", data)
    article, problems = loaded(seeds_dir, "odd.md")
    assert (article.title, article.url, problems) == ("Odd", "https://example.com/news/test-article", [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-02-01", "2021-02-01T00:00:00+00:00"),
        ('"2021-02-01"', "2021-02-01T00:00:00+00:00"),
        ("2021-02-01 10:30", "2021-02-01T10:30:00+00:00"),
        ("2021-02-01T10:30:00", "2021-02-01T10:30:00+00:00"),
        ('"2021-02-01T10:30:00+02:00"', "2021-02-01T08:30:00+00:00"),
        ('"Mon, 01 Feb 2021 10:30:00 GMT"', "2021-02-01T10:30:00+00:00"),
        ('"1 February 2021"', "2021-02-01T00:00:00+00:00"),
    ],
)
def test_dates_without_zone_or_time_are_utc(seeds_dir, value, expected):
    write(
        seeds_dir, "d.md", doc("---", "title: t", "webUrl: https://example.com/d", f"publishedDateTime: {value}", "---")
    )
    article, problems = loaded(seeds_dir, "d.md")
    assert (article.published.isoformat(), problems) == (expected, [])


def test_scalars_where_lists_are_expected(seeds_dir):
    write(
        seeds_dir,
        "s.md",
        doc(
            "---",
            "title: t",
            FIELDS + "topics: Robotics",
            "images: https://example.com/i.jpg",
            "related:",
            "  title: one link",
            "  webUrl: https://example.com/r",
            "---",
        ),
    )
    article, problems = loaded(seeds_dir, "s.md")
    assert article.topics == ("Robotics",)
    assert [i.url for i in article.images] == ["https://example.com/i.jpg"]
    assert [r.url for r in article.related] == ["https://example.com/r"]
    assert problems == []


@pytest.mark.parametrize(
    ("value", "expected"), [('"true"', True), ('"yes"', True), ("on", True), ('"false"', False), ("no", False)]
)
def test_published_as_text(seeds_dir, value, expected):
    write(seeds_dir, "p.md", doc("---", "title: t", FIELDS + f"published: {value}", "---"))
    article, problems = loaded(seeds_dir, "p.md")
    assert (article.is_published, problems) == (expected, [])


def test_unknown_keys_are_ignored(seeds_dir):
    write(
        seeds_dir,
        "u.md",
        doc("---", "title: t", FIELDS + "whatever: [1, {a: b}]", "ampWebUrl: not a url", "quality: high", "---"),
    )
    article, problems = loaded(seeds_dir, "u.md")
    assert (article.title, problems) == ("t", [])


def test_one_bad_related_link_beside_good_ones(seeds_dir, make_client):
    write(
        seeds_dir,
        "r.md",
        doc(
            "---",
            "title: With links",
            FIELDS + "published: true",
            "topics: Links",
            "related:",
            "  - title: good one",
            "    webUrl: https://example.com/good-1",
            "  - title: evil",
            '    webUrl: "javascript:alert(1)"',
            "  - title: good two",
            "    webUrl: https://example.com/good-2",
            "---",
        ),
    )
    article, problems = loaded(seeds_dir, "r.md")
    assert [r.url for r in article.related] == ["https://example.com/good-1", "https://example.com/good-2"]
    assert [(p.severity, p.message) for p in problems] == [
        ("warning", "related link 2 dropped: 'javascript:alert(1)' is not an absolute http(s) URL")
    ]
    client = make_client()
    for fmt in ("rss", "atom"):
        urls = served_urls(client, fmt, "/topics/links")
        assert sorted(urls) == ["https://example.com/good-1", "https://example.com/good-2", "https://example.com/x"]


# --- text repair, visible in the served feeds ----------------------------------------------------

REPAIRED = doc(
    "---",
    'title: "It\u00e2\u20ac\u2122s <b>Bold</b> &amp; \x01clean\x7f \u00e2\u20ac\u0153quoted\u00e2\u20ac\x9d"',
    'excerpt: "<p>Para one</p><script>alert(1)</script><style>p{}</style><p>Para\x0b two\x1f</p>  AT&T <3 &lt;tag&gt;"',
    "webUrl: https://example.com/repaired",
    "publishedDateTime: 2021-03-01",
    "published: true",
    "topics: Repair",
    "provider: Caf\u00c3\u00a9 News\x08",
    "---",
)
TITLE = "It’s Bold & clean “quoted”"
EXCERPT = "Para one Para two AT&T <3 <tag>"


def shown_as_html(text: str | None) -> str | None:
    """What a reader that reads `text` as HTML shows: its text (asserted to hold no element)."""
    if text is None:
        return None
    root = lxml.html.fragment_fromstring(text, create_parent="div")
    assert len(root) == 0, text
    return root.text_content()


def entry_texts(fmt: str, body: bytes) -> dict[str, tuple[str, str]]:
    """url -> (title, excerpt) of each entry, from a checked feed."""
    if fmt == "json":
        return {i["url"]: (i["title"], i.get("summary", "")) for i in json.loads(body)["items"]}
    root = check_feed(fmt, body)
    if fmt == "rss":  # <description> is HTML to RSS readers: what they show is its text
        items = root.iter("item")
        return {i.findtext("link"): (i.findtext("title"), shown_as_html(i.findtext("description"))) for i in items}
    return {
        e.find(f"{ATOM}link").get("href"): (e.findtext(f"{ATOM}title"), e.findtext(f"{ATOM}summary") or "")
        for e in root.iter(f"{ATOM}entry")
    }


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_repaired_text_is_served(seeds_dir, make_client, fmt):
    write(seeds_dir, "repaired.md", REPAIRED)
    client = make_client()
    path = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}[fmt]
    for url in (f"/topics/repair/{path}", f"/{path}", f"/{path}?include=all&limit=500"):
        response = client.get(url)
        assert response.status_code == 200
        texts = entry_texts(fmt, response.data)
        title, excerpt = texts["https://example.com/repaired"]
        assert title == TITLE
        assert excerpt == EXCERPT
        body = response.get_data(as_text=True)
        for bad in ("\x01", "\x7f", "\x0b", "\x1f", "\x9d", "\x08", "â€", "Ã", "<script", "alert(1)", "<b>"):
            assert bad not in body, (url, bad)
        if fmt == "json":
            (item,) = [i for i in json.loads(response.data)["items"] if i["url"] == "https://example.com/repaired"]
            assert item["authors"] == [{"name": "Café News"}]


@pytest.mark.parametrize("escape", ["\\x01", "\\0", "\\e", "\\uFFFE", "\\x7f", "\\x81", "\\u0090"])
def test_control_characters_from_yaml_escapes_are_dropped(seeds_dir, make_client, escape):
    write(
        seeds_dir,
        "escaped.md",
        doc("---", f'title: "Esc{escape}aped"', FIELDS + "published: true", "topics: Esc", "---"),
    )
    client = make_client()
    for fmt in ("rss", "atom"):
        response = client.get(f"/topics/esc/{fmt}.xml")
        assert response.status_code == 200
        assert entry_texts(fmt, response.data)["https://example.com/x"][0] == "Escaped"


# --- markup in text: plain text in the model, escaped wherever a reader reads HTML --------------

SHOWN = {  # what each field holds after loading: text, whatever markup characters it has
    "title": "<script>alert('title')</script>",
    "excerpt": "<script>alert('excerpt')</script> & <b>more</b>",
    "provider": "<script>alert('provider')</script>",
    "topic": "<script>alert('topic')</script>",
    "related": "<img src=x onerror=alert('related')>",
    "bare": "<svg onload=alert('bare')>",
}
MARKUP_FILES = {
    # Titles and excerpts are entity-encoded in the file (raw tags would be stripped); names are raw.
    "markup.md": front_matter(**article_fields(
        title="&lt;script&gt;alert('title')&lt;/script&gt;",
        excerpt="&lt;script&gt;alert('excerpt')&lt;/script&gt; &amp; &lt;b&gt;more&lt;/b&gt;",
        webUrl="https://example.com/markup", provider={"name": SHOWN["provider"]}, topics=[SHOWN["topic"]],
        related=[{"title": "&lt;img src=x onerror=alert('related')&gt;",
                  "webUrl": "https://example.com/markup-related"}],
    )),
    "bare.md": front_matter(**article_fields(  # an image and no excerpt: its title is its RSS description
        title="&lt;svg onload=alert('bare')&gt;", excerpt=None, webUrl="https://example.com/markup-bare",
        topics=[SHOWN["topic"]], publishedDateTime="2021-01-01T10:00:00Z",
    )),
}  # fmt: skip
LIVE = "//script | //svg | //b | //img[@onerror] | //*[@onload]"


def html_fields(route: str, body: bytes) -> list[str]:
    """Every string of a response that its readers take as HTML."""
    if route.endswith("rss.xml"):
        channel = check_feed("rss", body).find("channel")
        items = [
            (i.findtext("description"), i.findtext("{http://purl.org/rss/1.0/modules/content/}encoded"))
            for i in channel.iter("item")
        ]
        return [channel.findtext("description"), *(text for pair in items for text in pair if text)]
    if route.endswith("atom.xml"):
        root = check_feed("atom", body)
        for element in root.iter(f"{ATOM}title", f"{ATOM}subtitle", f"{ATOM}summary"):
            assert element.get("type") in (None, "text")  # RFC 4287 3.1.1: text, shown as it is
        return [content.text for content in root.iter(f"{ATOM}content") if content.get("type") == "html"]
    if route.endswith("feed.json"):
        return [item["content_html"] for item in json.loads(body)["items"] if "content_html" in item]
    return [body.decode("utf-8")]  # digest.html, the index page


def shown_text(markup: str) -> str:
    """What a browser shows of an HTML string: its text and its alt and title attributes."""
    root = lxml.html.document_fromstring(markup)
    assert root.xpath(LIVE) == [], markup
    return " | ".join([root.text_content(), *root.xpath("//@alt | //@title")])


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
def test_markup_in_text_fields_is_escaped_in_every_html_context(seeds_dir, make_client, fast_path):
    for name, text in MARKUP_FILES.items():
        write(seeds_dir, name, text.encode("utf-8"))
    client = make_client(FAST_PATH=fast_path)
    slug = topic_slug(SHOWN["topic"])
    feeds_text = {SHOWN["title"], SHOWN["excerpt"], SHOWN["bare"]}
    digest_text = feeds_text | {SHOWN["provider"], SHOWN["related"]}
    expected = {
        "/rss.xml": feeds_text, f"/topics/{slug}/rss.xml": feeds_text | {SHOWN["topic"]},
        "/atom.xml": feeds_text, f"/topics/{slug}/atom.xml": feeds_text,
        "/feed.json": feeds_text, f"/topics/{slug}/feed.json": feeds_text,
        "/digest.html": digest_text, f"/topics/{slug}/digest.html": digest_text | {SHOWN["topic"]},
        "/": {SHOWN["topic"]},
    }  # fmt: skip
    for route, texts in expected.items():
        response = client.get(route)
        assert response.status_code == 200, route
        shown = " | ".join(shown_text(field) for field in html_fields(route, response.data))
        for text in texts:  # shown as written: escaped once, not twice ("&lt;" would show)
            assert text in shown, (route, text)


def test_markup_in_text_fields_stays_text_in_plain_text_fields(seeds_dir, make_client):
    for name, text in MARKUP_FILES.items():
        write(seeds_dir, name, text.encode("utf-8"))
    client = make_client()
    rss = check_feed("rss", client.get("/rss.xml").data)
    items = {item.findtext("link"): item for item in rss.iter("item")}
    article = items["https://example.com/markup"]
    assert article.findtext("title") == SHOWN["title"]
    assert article.findtext("{http://purl.org/dc/elements/1.1/}creator") == SHOWN["provider"]
    assert article.findtext("category") == SHOWN["topic"]
    assert items["https://example.com/markup-related"].findtext("title") == SHOWN["related"]
    json_items = {item["url"]: item for item in json.loads(client.get("/feed.json").data)["items"]}
    item = json_items["https://example.com/markup"]
    assert (item["title"], item["summary"]) == (SHOWN["title"], SHOWN["excerpt"])
    assert item["content_text"] == SHOWN["excerpt"]
    assert item["authors"] == [{"name": SHOWN["provider"]}] and item["tags"] == [SHOWN["topic"]]
    atom = check_feed("atom", client.get("/atom.xml").data)
    entry = next(e for e in atom.iter(f"{ATOM}entry") if e.findtext(f"{ATOM}id") == "https://example.com/markup")
    assert (entry.findtext(f"{ATOM}title"), entry.findtext(f"{ATOM}summary")) == (SHOWN["title"], SHOWN["excerpt"])
    text = client.get("/digest.txt").get_data(as_text=True)
    assert all(SHOWN[field] in text for field in ("title", "excerpt", "provider", "related"))
    opml = lxml.etree.fromstring(client.get("/feeds.opml").data)
    assert f"feedsvc: {SHOWN['topic']}" in [outline.get("text") for outline in opml.iter("outline")]


def test_feedparser_shows_an_encoded_excerpt_as_its_text(seeds_dir, make_client):
    """feedparser sanitises a description as HTML: a live <script> would be dropped, text kept."""
    write(seeds_dir, "markup.md", MARKUP_FILES["markup.md"].encode("utf-8"))
    parsed = feedparser.parse(make_client().get("/rss.xml").data)
    [entry] = [e for e in parsed.entries if e.link == "https://example.com/markup"]
    assert lxml.html.fragment_fromstring(entry.summary, create_parent="div").text_content() == SHOWN["excerpt"]


BIDI_FILE = doc(
    "---",
    'title: "Invoice \\u202Efdp.exe"',
    'excerpt: "Pay \\u2066now\\u2069 or &#x202E;later"',
    "webUrl: https://example.com/bidi",
    "publishedDateTime: 2021-03-01",
    "published: true",
    'topics: ["Bi\\u202Bdi"]',
    'provider: {name: "Trusted\\u202D News"}',
    "related:",
    '  - {title: "Read \\u2067this\\u202C", webUrl: "https://example.com/bidi-related"}',
    "---",
)
BIDI_CHARACTER = re.compile("[\u202a-\u202e\u2066-\u2069]")


def test_bidi_controls_never_reach_any_route(seeds_dir, make_client):
    write(seeds_dir, "bidi.md", BIDI_FILE)
    client = make_client()
    article, _ = loaded(seeds_dir, "bidi.md")
    assert (article.title, article.excerpt) == ("Invoice fdp.exe", "Pay now or later")
    assert (article.topics, article.provider.name, article.related[0].title) == (("Bidi",), "Trusted News", "Read this")
    routes = ["/", "/feeds.opml"] + [
        f"{prefix}/{name}"
        for prefix in ("", "/topics/bidi")
        for name in ("rss.xml", "atom.xml", "feed.json", "digest.html", "digest.txt")
    ]
    for route in routes:
        response = client.get(route)
        assert response.status_code == 200, route
        body = response.get_data(as_text=True)
        assert "fdp.exe" in body or route in ("/", "/feeds.opml"), route
        # Written as characters or as references, escaped once (XML) or twice (HTML in XML).
        assert not BIDI_CHARACTER.search(html.unescape(html.unescape(body))), route


def test_c1_controls_from_yaml_escapes_are_dropped(seeds_dir):
    write(seeds_dir, "c1.md", doc("---", 'title: "C1\\x81here\\x9d"', FIELDS + "---"))
    article, _ = loaded(seeds_dir, "c1.md")
    assert article.title == "C1here"


def test_excerpt_after_a_long_script_block_is_served(seeds_dir, make_client):
    excerpt = '<script type="application/ld+json">' + '{"a": 1}' * 1200 + "</script><p>The real excerpt.</p>"
    write(
        seeds_dir,
        "ld.md",
        doc(
            "---",
            "title: With JSON-LD",
            FIELDS + "published: true",
            "topics: Ld",
            "excerpt: " + json.dumps(excerpt),
            "---",
        ),
    )
    texts = entry_texts("atom", make_client().get("/topics/ld/atom.xml").data)
    assert texts["https://example.com/x"] == ("With JSON-LD", "The real excerpt.")


def test_long_title_and_excerpt_are_cut_per_config(seeds_dir, write_article, make_client):
    title = " ".join(f"word{n}" for n in range(60))
    excerpt = " ".join(f"sentence{n}" for n in range(200))
    write_article(
        "long.md",
        title=title,
        excerpt=excerpt,
        webUrl="https://example.com/long",
        topics=["Long"],
        related=[{"title": title, "excerpt": excerpt, "webUrl": "https://example.com/long-related"}],
    )
    client = make_client(MAX_TITLE_CHARS=40, MAX_EXCERPT_CHARS=100)
    for fmt in ("rss", "atom", "json"):
        path = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}[fmt]
        texts = entry_texts(fmt, client.get(f"/topics/long/{path}").data)
        cut_title, cut_excerpt = texts["https://example.com/long"]
        assert len(cut_title) <= 40 and cut_title.endswith("…") and title.startswith(cut_title[:-1])
        assert len(cut_excerpt) <= 100 and cut_excerpt.endswith("…") and excerpt.startswith(cut_excerpt[:-1])
        assert cut_title[:-1].split()[-1] in title.split()  # cut at a word boundary
        related_title, _ = texts["https://example.com/long-related"]
        assert related_title == cut_title


def test_default_limits_keep_ordinary_text_whole(seeds_dir, write_article, make_client):
    title = "A" + " normal title" * 20  # 261 characters, under the default 300
    write_article("ok.md", title=title, webUrl="https://example.com/ok", topics=["Ok"])
    texts = entry_texts("atom", make_client().get("/topics/ok/atom.xml").data)
    assert texts["https://example.com/ok"][0] == title


# --- duplicates, hidden files ------------------------------------------------------------------


def test_two_files_with_the_same_web_url_give_one_entry_and_a_warning(seeds_dir, write_article, make_client, capsys):
    write_article("a-first.md", title="First copy", webUrl="https://example.com/dup", topics=["Dup"])
    write_article("b-second.md", title="Second copy", webUrl="https://example.com/dup", topics=["Dup"])
    client = make_client()
    for fmt in ("rss", "atom", "json"):
        path = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}[fmt]
        texts = entry_texts(fmt, client.get(f"/topics/dup/{path}").data)
        assert texts.keys() == {"https://example.com/dup"}
        assert texts["https://example.com/dup"][0] == "First copy"
    assert client.get("/healthz").get_json()["warnings"] == 1
    assert main(["check", str(seeds_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        (
            "b-second.md: warning: webUrl https://example.com/dup is also the webUrl of a-first.md: "
            "one entry is served, from the newest selected file"
        )
    ]


LEFTOVERS = [
    ".#x.md",
    "x.md~",
    "x.swp",
    "x.md.swp",
    ".x.md.swo",
    "#x.md#",
    ".hidden.md",
    "x.md.bak",
    "x.md.orig",
    "x.tmp",
    ".hidden/x.md",
    "sub/.git/x.md",
    "sub/.#y.md",
]


@pytest.mark.parametrize("name", LEFTOVERS)
def test_hidden_files_and_editor_leftovers_are_never_read(seeds_dir, write_article, make_client, capsys, name):
    write_article(name, webUrl="https://example.com/leftover", topics=["Leftover"])
    client = make_client()
    assert "https://example.com/leftover" not in served_urls(client)
    assert client.get("/topics/leftover/rss.xml").status_code == 404
    assert client.get("/healthz").get_json()["articles"] == len(SEED_URLS)
    write(seeds_dir, name, b"---\ntitle: [broken\n")
    assert main(["check", str(seeds_dir)]) == 0
    assert capsys.readouterr().out == ""


def test_a_folder_of_only_leftovers_checks_clean(tmp_path, capsys):
    for name in LEFTOVERS:
        write(tmp_path, name, b"---\nnot: [valid\n")
    assert main(["check", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "0 articles, 0 files skipped" in err


# --- feedsvc check: PATH:LINE: error: message -------------------------------------------------


def check_lines(seeds_dir: Path, capsys) -> tuple[int, list[str]]:
    status = main(["check", str(seeds_dir)])
    return status, capsys.readouterr().out.splitlines()


def test_check_points_at_the_line_of_the_field_at_fault(seeds_dir, capsys):
    write(
        seeds_dir,
        "x.md",
        doc(
            "---",
            "title: Fine",
            "excerpt: also fine",
            "",
            "webUrl: javascript:void(0)",
            "publishedDateTime: 2021-01-01",
            "---",
        ),
    )
    assert check_lines(seeds_dir, capsys) == (
        1,
        ["x.md:5: error: webUrl 'javascript:void(0)' is not an absolute http(s) URL"],
    )


def test_check_line_counts_the_opening_dashes_and_survives_bom_and_crlf(seeds_dir, capsys):
    data = b"\xef\xbb\xbf" + doc(
        "---", "title: Fine", "publishedDateTime: soon", "webUrl: https://example.com/y", "---"
    ).replace(b"\n", b"\r\n")
    write(seeds_dir, "y.md", data)
    assert check_lines(seeds_dir, capsys) == (
        1,
        ["y.md:3: error: publishedDateTime 'soon' is not a date: use ISO 8601, e.g. 2021-01-13T23:56:00Z"],
    )


def test_check_missing_field_has_no_line(seeds_dir, capsys):
    write(seeds_dir, "z.md", doc("---", "title: on line two", "publishedDateTime: 2021-01-01", "---"))
    assert check_lines(seeds_dir, capsys) == (
        1,
        ["z.md: error: webUrl is missing: add 'webUrl: \"https://...\"' to the front matter"],
    )


def test_check_invalid_yaml_has_its_line(seeds_dir, capsys):
    write(seeds_dir, "q.md", doc("---", "title: ok", "webUrl: https://example.com/q", 'excerpt: "never closed', "---"))
    status, lines = check_lines(seeds_dir, capsys)
    assert status == 1
    (line,) = lines
    path, number, rest = line.split(":", 2)
    assert path == "q.md" and number.isdigit() and 4 <= int(number) <= 5
    assert rest.startswith(" error: invalid YAML: ")


def test_check_lists_problems_by_path_then_line(seeds_dir, capsys):
    write(seeds_dir, "b.md", doc("---", "title: t", "webUrl: nope", "publishedDateTime: 2021-01-01", "---"))
    write(seeds_dir, "a/c.md", doc("---", "title: [", "---"))
    write(seeds_dir, "a.md", doc("no front matter"))
    write(seeds_dir, "w.md", doc("---", "title: t", FIELDS + "published: maybe", "---"))
    status, lines = check_lines(seeds_dir, capsys)
    assert status == 1
    assert [line.split(": ")[0] for line in lines] == ["a.md:1", "a/c.md:3", "b.md:3", "w.md"]
    assert [line.split(": ")[1] for line in lines] == ["error", "error", "error", "warning"]


def test_check_with_only_warnings_exits_0(seeds_dir, capsys):
    write(seeds_dir, "w.md", doc("---", "title: t", FIELDS + "published: maybe", "images: [ftp://x/y.jpg]", "---"))
    status, lines = check_lines(seeds_dir, capsys)
    assert status == 0
    assert sorted(lines) == [
        "w.md: warning: image dropped: url 'ftp://x/y.jpg' is not an absolute http(s) URL",
        "w.md: warning: published: 'maybe' is neither true nor false; the article is not published",
    ]


def test_check_line_of_a_repeated_key_is_the_one_that_counts(seeds_dir, capsys):
    write(
        seeds_dir,
        "twice.md",
        doc(
            "---",
            "title: t",
            "webUrl: https://example.com/fine",
            "publishedDateTime: 2021-01-01",
            "webUrl: javascript:alert(1)",
            "---",
        ),
    )
    assert check_lines(seeds_dir, capsys) == (
        1,
        ["twice.md:5: error: webUrl 'javascript:alert(1)' is not an absolute http(s) URL"],
    )
