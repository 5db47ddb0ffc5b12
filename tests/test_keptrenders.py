"""feedsvc.keptrenders: a build after a change renders again only the feeds whose entries changed,
reusing the bodies the last build of the folder made; bodies made with other settings or code,
not signed with this user's key, or whose file in the tree changed since, are never reused. Every tree is the one a build from nothing
writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import article_text

import feedsvc.build
import feedsvc.runtime.bodycache
from feedsvc.cli import main

BASE = "https://static.example.org/news/"
FEED_FILES = ["rss.xml", "atom.xml", "feed.json", "digest.html", "digest.txt"]


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The title of every feed rendered from now on (each call of bodycache's render_body)."""
    made: list[str] = []
    real = feedsvc.runtime.bodycache.render_body

    def spy(fmt, info, entries):
        made.append(f"{info.title} {fmt}")
        return real(fmt, info, entries)

    monkeypatch.setattr(feedsvc.runtime.bodycache, "render_body", spy)
    return made


@pytest.fixture
def two_topics(tmp_path: Path) -> Path:
    folder = tmp_path / "two-topics"
    folder.mkdir()
    for name, title, topic, day in [("a1.md", "Alpha one", "Alpha", 3), ("a2.md", "Alpha two", "Alpha", 2),
                                    ("b1.md", "Beta one", "Beta", 1)]:  # fmt: skip
        (folder / name).write_text(
            article_text(title=title, topics=[topic], webUrl=f"https://x.example/{name}",
                         publishedDateTime=f"2021-02-0{day}T10:00:00Z"),
            encoding="utf-8",
        )  # fmt: skip
    return folder


def run_build(capsys, outdir: Path, seeds: Path) -> str:
    code = main(["build", str(outdir), "--base-url", BASE, "--seeds", str(seeds)])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def files_of(outdir: Path) -> dict[str, bytes]:
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


def built_from_nothing(capsys, monkeypatch, outdir: Path, seeds: Path) -> dict[str, bytes]:
    with monkeypatch.context() as patch:
        patch.setenv("FEEDSVC_CACHE_DIR", "")
        run_build(capsys, outdir, seeds)
    return files_of(outdir)


def retitle(folder: Path, name: str, title: str) -> None:
    path = folder / name
    old = path.read_text(encoding="utf-8")
    path.write_text(old.replace("title: Alpha one", f"title: {title}"), encoding="utf-8")
    assert path.read_text(encoding="utf-8") != old


def rebuild_after_one_edit(tmp_path, capsys, monkeypatch, two_topics, renders, outdir) -> None:
    """Retitle one article and build again: only the feeds showing it are rendered, and the tree
    equals a build from nothing."""
    renders.clear()

    retitle(two_topics, "a1.md", "Alpha one, corrected")
    run_build(capsys, outdir, two_topics)
    assert sorted(renders) == sorted(f"{feed} {fmt}" for feed in ("feedsvc: All topics", "feedsvc: Alpha")
                                     for fmt in ("rss", "atom", "json", "digest-html", "digest-txt"))  # fmt: skip
    assert files_of(outdir) == built_from_nothing(capsys, monkeypatch, tmp_path / "fresh", two_topics)


def test_after_one_edit_only_the_feeds_showing_it_are_rendered_again(
    tmp_path, capsys, monkeypatch, two_topics, renders
):
    outdir = tmp_path / "site"
    run_build(capsys, outdir, two_topics)
    assert len(renders) == 3 * len(FEED_FILES)  # all topics, alpha, beta
    rebuild_after_one_edit(tmp_path, capsys, monkeypatch, two_topics, renders, outdir)


def test_bodies_a_forked_worker_rendered_are_kept_too(tmp_path, capsys, monkeypatch, two_topics, renders):
    outdir = tmp_path / "site"
    with monkeypatch.context() as patch:  # the first build on two processes, whatever the routes and cores
        patch.setattr(feedsvc.build, "PARALLEL_MIN_PATHS", 1)
        patch.setattr(feedsvc.build, "usable_cores", lambda: 2)
        run_build(capsys, outdir, two_topics)
    assert 0 < len(renders) < 3 * len(FEED_FILES)  # here only what this process rendered: the worker made the rest
    rebuild_after_one_edit(tmp_path, capsys, monkeypatch, two_topics, renders, outdir)


def test_a_body_whose_file_changed_since_is_rendered_again(tmp_path, capsys, monkeypatch, two_topics, renders):
    # The kept records name their bodies' files in the tree; a file edited since hashes otherwise.
    outdir = tmp_path / "site"
    run_build(capsys, outdir, two_topics)
    feed = outdir / "topics" / "alpha" / "rss.xml"
    feed.write_bytes(feed.read_bytes().replace(b"Alpha two", b"Edited by hand"))
    renders.clear()
    run_build(capsys, outdir, two_topics)
    assert renders == ["feedsvc: Alpha rss"]
    assert files_of(outdir) == built_from_nothing(capsys, monkeypatch, tmp_path / "fresh", two_topics)


def test_another_setting_renders_every_feed_again(tmp_path, capsys, monkeypatch, two_topics, renders):
    outdir = tmp_path / "site"
    run_build(capsys, outdir, two_topics)
    renders.clear()
    monkeypatch.setenv("FEEDSVC_FEED_AUTHOR", "Another author")
    run_build(capsys, outdir, two_topics)
    assert len(renders) == 3 * len(FEED_FILES)
    assert files_of(outdir) == built_from_nothing(capsys, monkeypatch, tmp_path / "fresh", two_topics)


def test_kept_bodies_not_signed_with_this_users_key_are_never_used(
    tmp_path, capsys, monkeypatch, two_topics, renders, private_cache_dir, caplog
):
    outdir = tmp_path / "site"
    run_build(capsys, outdir, two_topics)
    (kept,) = private_cache_dir.glob("renders-*.bin")
    data = bytearray(kept.read_bytes())
    forged = bytes(data).replace(b"Alpha two", b"Forged!!!")
    assert forged != bytes(data)
    kept.write_bytes(forged)
    retitle(two_topics, "a1.md", "Alpha one, corrected")  # so that the build does not stop at its manifest
    renders.clear()
    run_build(capsys, outdir, two_topics)
    assert len(renders) == 3 * len(FEED_FILES)
    assert "not signed with this user's key" in caplog.text
    assert b"Forged" not in b"".join(files_of(outdir).values())
    assert files_of(outdir) == built_from_nothing(capsys, monkeypatch, tmp_path / "fresh", two_topics)
