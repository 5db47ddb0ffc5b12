"""`feedsvc build OUTDIR [--base-url URL] [--seeds DIR] [--strict]`: the static export.

Every public route becomes a file, every page of every feed and digest included, byte for byte
what the server answers for the same base URL (checked against the app's test client and once
against a real `feedsvc serve`), and every paging link in a file names another file. A build is
atomic (a reader never sees a missing or partial file) and incremental (an unchanged file keeps
its inode and mtime; a changed article rewrites only the files it shows in). With --strict, a
folder with errors exits 1 and leaves the old tree as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import lxml.html
import pytest
from helpers import ATOM, CORPUS, article_fields, check_atom, check_feed, check_rss, front_matter, serving
from lxml import etree

import feedsvc.build
import feedsvc.runtime.bodycache
from feedsvc import create_app
from feedsvc.build import build
from feedsvc.cli import main

BASE = "https://static.example.org/news/"  # with a path: links must keep it
SITE_FILES = [
    "index.html", "feeds.opml", "style.css", "all/index.html", "rss.xml", "atom.xml", "feed.json", "digest.html",
    "digest.txt",
]  # fmt: skip
TOPIC_FILES = ["index.html", "rss.xml", "atom.xml", "feed.json", "digest.html", "digest.txt"]
T0 = 1_600_000_000  # a fixed past mtime, so that "not rewritten" is visible in st_mtime


def app_for(seeds: Path, base: str = BASE, **config):
    """The app a build of `seeds` must agree with: the server's defaults, the same base URL, no reloading."""
    return create_app({"TESTING": True, "SEEDS_DIR": str(seeds), "BASE_URL": base, "RELOAD_INTERVAL": 0, **config})


def route(name: str) -> str:
    """The URL path a file of the tree stands for."""
    return "/" + name.removesuffix("index.html")


def files_of(outdir: Path) -> dict[str, bytes]:
    """Every regular file under `outdir`, by relative path."""
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


def stats(outdir: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file under `outdir`."""
    found = {}
    for path in outdir.rglob("*"):
        if path.is_file():
            st = path.stat()
            found[path.relative_to(outdir).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return found


def expected_names(client, per_page: int = 50) -> set[str]:
    """The files a build must write, from the public OPML's topic feeds and each feed's number of
    entries (not from the builder's list): page N >= 2 of a document is page/N/ beside page 1."""
    response = client.get("/feeds.opml")
    assert response.status_code == 200
    slugs = {
        o.get("xmlUrl").split("/")[-2]
        for o in etree.fromstring(response.data).iterfind(".//outline[@xmlUrl]")  # the feeds, not their group
        if "/topics/" in o.get("xmlUrl")
    }
    assert slugs
    names = {"index.html", "feeds.opml", "style.css"}
    for folder in ["", *(f"topics/{slug}/" for slug in slugs)]:
        entries = len(json.loads(client.get(f"/{folder}feed.json?limit=500").data)["items"])
        pages = max(1, -(-entries // per_page))
        page_folder = folder or "all/"  # every topic's HTML page is /all/, beside the index
        for n in range(1, pages + 1):
            page = "" if n == 1 else f"page/{n}/"
            names |= {f"{page_folder if name == 'index.html' else folder}{page}{name}" for name in TOPIC_FILES}
    return names


def links_in(name: str, body: bytes) -> dict[str, str]:
    """rel -> href of the self and RFC 5005 paging links of an exported feed (JSON Feed: feed_url, next_url)."""
    if name.endswith(".json"):
        data = json.loads(body)
        return {"self": data["feed_url"]} | ({"next": data["next_url"]} if "next_url" in data else {})
    root = etree.fromstring(body)
    links = root.findall(f"{ATOM}link") if root.tag == f"{ATOM}feed" else root.findall(f"channel/{ATOM}link")
    return {l.get("rel"): l.get("href") for l in links if l.get("rel") in ("self", "first", "last", "previous", "next")}


def run_build(capsys, outdir: Path, seeds: Path, *extra: str, base: str = BASE) -> tuple[int, str]:
    code = main(["build", str(outdir), "--base-url", base, "--seeds", str(seeds), *extra])
    return code, capsys.readouterr().err


def leftovers(outdir: Path) -> list[str]:
    """Staging trees a build left next to `outdir` (the one previous tree is kept on purpose,
    for readers still walking it, and removed by the next build)."""
    kept = f".{outdir.name}.previous"
    return sorted(p.name for p in outdir.parent.iterdir() if p.name.startswith(f".{outdir.name}.") and p.name != kept)


def set_mtimes(outdir: Path, seconds: int) -> None:
    for path in outdir.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def write(folder: Path, name: str, **overrides) -> Path:
    path = folder / name
    path.write_text(front_matter(**article_fields(**overrides)), encoding="utf-8")
    return path


@pytest.fixture
def with_a_draft_topic(seeds_dir: Path) -> Path:
    """The seeds plus a draft in a topic nothing published is in."""
    write(
        seeds_dir,
        "zz-draft.md",
        title="A draft nobody may see",
        published=False,
        topics=["Embargoed Plans"],
        webUrl="https://news.example.com/embargoed",
    )
    return seeds_dir


@pytest.mark.parametrize("per_page", [50, 2])
@pytest.mark.parametrize("folder", ["seeds", "corpus"])
def test_build_writes_every_public_route_as_the_app_answers_it(
    tmp_path, capsys, monkeypatch, with_a_draft_topic, folder, per_page
):
    seeds = with_a_draft_topic if folder == "seeds" else shutil.copytree(CORPUS, tmp_path / "corpus")
    monkeypatch.setenv("FEEDSVC_DEFAULT_LIMIT", str(per_page))  # the build reads the server's settings
    outdir = tmp_path / "site"
    code, err = run_build(capsys, outdir, seeds)
    assert code == 0, err
    client = app_for(seeds).test_client()
    tree = files_of(outdir)
    assert set(tree) == expected_names(client, per_page)
    assert f"{len(tree)} files written, 0 unchanged" in err
    for name, body in tree.items():
        response = client.get(route(name))
        assert response.status_code == 200, name
        assert body == response.data, f"{name} differs from GET {route(name)}"
    # what the files say: absolute links on the given base URL, paging that a static host serves, no drafts
    assert not [n for n in tree if "embargoed" in n]
    assert all(b"A draft nobody may see" not in body for body in tree.values())
    check_rss(tree["rss.xml"])
    feeds = {
        name: links_in(name, body) for name, body in tree.items() if name.endswith(("rss.xml", "atom.xml", "feed.json"))
    }
    for name, links in feeds.items():
        assert links["self"] == BASE + name, name  # a page's rel=self is its own path
        for rel, href in links.items():
            assert href.startswith(BASE) and href[len(BASE) :] in tree, f"{name}: rel={rel} {href} is not a file"
    check_atom(tree["topics/ai/atom.xml"])
    assert feeds["topics/ai/atom.xml"]["first"] == BASE + "topics/ai/atom.xml"
    walked = ["feed.json"]  # JSON Feed's next_url from page 1 visits every page file once
    while "next" in feeds[walked[-1]]:
        walked.append(feeds[walked[-1]]["next"][len(BASE) :])
    assert sorted(walked) == sorted(n for n in tree if n.endswith("feed.json") and not n.startswith("topics/"))
    if per_page == 2:
        assert len(walked) >= 2
        check_atom(tree["topics/ai/page/2/atom.xml"])
        assert feeds["topics/ai/atom.xml"]["next"] == BASE + "topics/ai/page/2/atom.xml"
    check_feed("rss", tree["topics/computer-vision/rss.xml"])
    assert b'href="https://static.example.org/news/topics/ai/rss.xml"' in tree["index.html"]
    assert b'href="https://static.example.org/news/topics/ai/"' in tree["index.html"]  # its topic page
    assert b'href="https://static.example.org/news/style.css"' in tree["topics/ai/index.html"]
    for name in (
        n for n in tree if n.endswith("index.html") and n != "index.html"
    ):  # the HTML pages page as the feeds do
        for href in lxml.html.fromstring(tree[name]).xpath("//a[@rel='next' or @rel='prev']/@href"):
            assert href.startswith(BASE) and href[len(BASE) :] + "index.html" in tree, f"{name}: {href} is not a file"
    assert leftovers(outdir) == []


@pytest.mark.slow
def test_build_is_byte_identical_to_a_real_feedsvc_serve(tmp_path, capsys, monkeypatch, with_a_draft_topic):
    base = "http://feeds.example.net/"
    monkeypatch.setenv("FEEDSVC_DEFAULT_LIMIT", "2")  # pages to export
    outdir = tmp_path / "site"
    code, err = run_build(capsys, outdir, with_a_draft_topic, base=base)
    assert code == 0, err
    tree = files_of(outdir)
    assert "page/2/rss.xml" in tree and "topics/ai/page/2/digest.txt" in tree
    with serving(with_a_draft_topic, {"FEEDSVC_BASE_URL": base, "FEEDSVC_DEFAULT_LIMIT": "2"}) as server:
        for name, body in tree.items():
            status, headers, served = server.request(route(name), {"Accept-Encoding": "identity"})
            assert status == 200, name
            assert "Content-Encoding" not in headers
            assert served == body, f"{name} differs from what feedsvc serve answers"
        assert server.request("/topics/embargoed-plans/rss.xml")[0] == 404  # not public: not exported


@pytest.mark.parametrize("per_page", [50, 1])
def test_rebuild_without_changes_rewrites_nothing(tmp_path, capsys, monkeypatch, seeds_dir, per_page):
    monkeypatch.setenv("FEEDSVC_DEFAULT_LIMIT", str(per_page))
    outdir = tmp_path / "site"
    assert run_build(capsys, outdir, seeds_dir)[0] == 0
    assert ("page/2/rss.xml" in files_of(outdir)) is (per_page == 1)  # pages are carried over too
    set_mtimes(outdir, T0)
    before, contents = stats(outdir), files_of(outdir)
    code, err = run_build(capsys, outdir, seeds_dir)
    assert code == 0
    assert f"0 files written, {len(before)} unchanged" in err
    assert stats(outdir) == before  # same inode, same mtime: `rsync`/`s3 sync` skip them
    assert all(mtime == T0 * 10**9 for _, mtime in before.values())
    assert files_of(outdir) == contents
    assert leftovers(outdir) == []


@pytest.fixture
def two_topics(tmp_path: Path) -> Path:
    folder = tmp_path / "two-topics"
    folder.mkdir()
    write(
        folder,
        "alpha-1.md",
        title="Alpha one",
        topics=["Alpha"],
        webUrl="https://a.example/1",
        publishedDateTime="2021-02-03T10:00:00Z",
    )
    write(
        folder,
        "alpha-2.md",
        title="Alpha two",
        topics=["Alpha"],
        webUrl="https://a.example/2",
        publishedDateTime="2021-02-02T10:00:00Z",
    )
    write(
        folder,
        "beta-1.md",
        title="Beta one",
        topics=["Beta"],
        webUrl="https://b.example/1",
        publishedDateTime="2021-02-01T10:00:00Z",
    )
    return folder


def test_changed_article_rewrites_only_the_files_it_shows_in(tmp_path, capsys, two_topics):
    outdir = tmp_path / "site"
    assert run_build(capsys, outdir, two_topics)[0] == 0
    set_mtimes(outdir, T0)
    before, old = stats(outdir), files_of(outdir)
    write(
        two_topics,
        "alpha-1.md",
        title="Alpha one, corrected",
        topics=["Alpha"],
        webUrl="https://a.example/1",
        publishedDateTime="2021-02-03T10:00:00Z",
    )
    started = time.time_ns()
    code, err = run_build(capsys, outdir, two_topics)
    assert code == 0, err
    after, new = stats(outdir), files_of(outdir)
    assert set(after) == set(before)

    differs = {name for name in new if new[name] != old[name]}
    assert differs == {
        "all/index.html",
        "rss.xml",
        "atom.xml",
        "feed.json",
        "digest.html",
        "digest.txt",
        *(f"topics/alpha/{name}" for name in TOPIC_FILES),
    }
    rewritten = {name for name in after if after[name] != before[name]}
    assert rewritten == differs
    for name in differs:
        assert after[name][1] >= started - 2 * 10**9 and after[name][0] != before[name][0]
    for name in set(after) - differs:  # beta's files, the index, the OPML
        assert after[name] == before[name] and after[name][1] == T0 * 10**9
    assert f"{len(differs)} files written, {len(after) - len(differs)} unchanged" in err
    client = app_for(two_topics).test_client()
    assert all(new[name] == client.get(route(name)).data for name in differs)
    assert b"Alpha one, corrected" in new["topics/alpha/digest.txt"]


BUILDS = 40


@pytest.mark.slow
def test_a_reader_never_sees_a_missing_or_partial_file_during_rebuilds(tmp_path, two_topics):
    """Builds alternate between two versions of the content while a thread reads every file of the tree."""
    second = tmp_path / "second-version"
    shutil.copytree(two_topics, second)
    for number, name in ((1, "alpha-1.md"), (2, "alpha-2.md")):
        write(
            second,
            name,
            title=f"Alpha {number}, second version " + "long text " * 200,
            topics=["Alpha"],
            webUrl=f"https://a.example/{number}",
            publishedDateTime=f"2021-02-0{4 - number}T10:00:00Z",
        )
    apps = [app_for(two_topics), app_for(second)]
    outdir = tmp_path / "site"
    build(apps[0], outdir)
    versions = [files_of(outdir)]
    build(apps[1], outdir)
    versions.append(files_of(outdir))
    names = set(versions[0])
    assert set(versions[1]) == names
    assert sum(versions[0][n] != versions[1][n] for n in names) >= 10  # most files change every build

    problems: list[str] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:
        """Open every file by its path, over and over: each open must find a whole file."""
        while not stop.is_set() and len(problems) < 20:
            for _ in range(50):  # a tight look at the top of the tree, where the swap happens
                if not (outdir / "rss.xml").is_file() or not (outdir / "topics" / "beta").is_dir():
                    problems.append("the tree or part of it is missing")
            for name in sorted(names):
                try:
                    body = (outdir / name).read_bytes()
                except OSError as exc:
                    problems.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                reads[0] += 1
                if body not in (versions[0][name], versions[1][name]):
                    problems.append(f"{name}: {len(body)} bytes, neither version")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        for number in range(BUILDS):
            assert time.monotonic() < deadline, f"{BUILDS} builds took over a minute"
            build(apps[number % 2], outdir)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert problems == []
    assert reads[0] >= 2 * len(names)  # the reader really ran alongside the builds
    assert files_of(outdir) == versions[(BUILDS - 1) % 2]
    assert leftovers(outdir) == []


def feedsvc_command() -> list[str]:
    script = Path(sys.executable).with_name("feedsvc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "feedsvc.cli"]


@pytest.mark.slow
def test_strict_build_of_a_folder_with_errors_exits_1_and_keeps_the_old_tree(tmp_path, seeds_dir):
    outdir = tmp_path / "site"
    command = [*feedsvc_command(), "build", str(outdir), "--base-url", BASE, "--seeds", str(seeds_dir), "--strict"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    set_mtimes(outdir, T0)
    before, contents = stats(outdir), files_of(outdir)

    (seeds_dir / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    # a valid change too: a strict build that refuses must not half-apply it
    write(seeds_dir, "new.md", title="Would be new", topics=["AI"], webUrl="https://news.example.com/new")
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1
    assert "feedsvc build: error:" in refused.stderr and "1 file(s) have errors" in refused.stderr
    assert stats(outdir) == before and files_of(outdir) == contents
    assert leftovers(outdir) == []

    lenient = subprocess.run(command[:-1], capture_output=True, text=True, timeout=120, check=False)
    assert lenient.returncode == 0, lenient.stderr
    assert b"Would be new" in files_of(outdir)["topics/ai/rss.xml"]
    assert leftovers(outdir) == []


def test_a_listing_in_progress_during_a_swap_still_sees_every_file(tmp_path, two_topics):
    outdir = tmp_path / "site"
    app = app_for(two_topics)
    build(app, outdir)
    with os.scandir(outdir / "topics" / "alpha") as listing:  # opened before the swap, read after it
        build(app, outdir)  # not even a change: the same files swapped in
        names = sorted(entry.name for entry in listing)
    assert sorted(os.listdir(outdir / "topics" / "alpha")) == sorted(TOPIC_FILES)
    assert names == sorted(TOPIC_FILES)


def title_of(path: Path) -> str:
    """The quoted title of a corpus article's front matter."""
    return next(line for line in path.read_text("utf-8").splitlines() if line.startswith('title: "'))[8:-1]


def test_a_build_on_every_core_writes_the_tree_a_one_process_build_writes(tmp_path, capsys, monkeypatch, corpus_dir):
    """Forced onto two processes (any number of routes), a build writes the same bytes, and counts
    the same files written and unchanged, as a build in one process, cold and after an edit."""
    pids = tmp_path / "pids"
    real = feedsvc.runtime.bodycache.render_body

    def spy(fmt, info, entries):  # which process rendered: a forked worker's memory is not ours
        with pids.open("a") as stream:
            stream.write(f"{os.getpid()}\n")
        return real(fmt, info, entries)

    monkeypatch.setattr(feedsvc.runtime.bodycache, "render_body", spy)
    monkeypatch.setattr(feedsvc.build, "usable_cores", lambda: 2)  # two processes on a one-core runner too

    def both_ways() -> tuple[dict[str, bytes], str]:
        monkeypatch.setattr(feedsvc.build, "PARALLEL_MIN_PATHS", 1)
        code, parallel_err = run_build(capsys, tmp_path / "parallel", corpus_dir)
        assert code == 0, parallel_err
        parallel = files_of(tmp_path / "parallel")
        monkeypatch.setattr(feedsvc.build, "PARALLEL_MIN_PATHS", 10**9)
        code, serial_err = run_build(capsys, tmp_path / "serial", corpus_dir)
        assert code == 0, serial_err
        assert parallel == files_of(tmp_path / "serial")
        assert parallel_err.splitlines()[-1].split(": ")[1] == serial_err.splitlines()[-1].split(": ")[1]
        return parallel, parallel_err

    files, err = both_ways()
    assert f"{len(files)} files written, 0 unchanged" in err
    assert len(set(pids.read_text().split())) == 2  # the parent and one forked worker both rendered

    shown = [p for p in sorted(corpus_dir.glob("*.md")) if title_of(p).encode() in files["rss.xml"]]
    victim = shown[0]  # an article the site-wide feed's first page shows
    text = victim.read_text("utf-8")
    victim.write_text(text.replace('title: "', 'title: "Corrected: ', 1), encoding="utf-8")
    edited, err = both_ways()
    assert edited != files, err
    changed = sum(edited.get(name) != files.get(name) for name in edited)
    assert f"{changed} files written, {len(edited) - changed} unchanged" in err
