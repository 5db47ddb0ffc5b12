"""load_folder and its steps: every good file loads, every bad one becomes a useful Problem."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from helpers import CORPUS, SEEDS, article_fields, as_unprivileged, front_matter, set_mtime
from hypothesis import given, settings
from hypothesis import strategies as st

import feedsvc.content.files
import feedsvc.content.frontmatter
import feedsvc.runtime.loader
from feedsvc.content.fields import Limits
from feedsvc.content.files import load_bytes
from feedsvc.content.frontmatter import decode, split_front_matter
from feedsvc.content.model import Problem
from feedsvc.errors import ArticleError, FeedsvcError
from feedsvc.runtime.loader import (
    FileState,
    LoadResult,
    load_folder,
    refresh,
    result_of,
    stale_names,
)
from feedsvc.runtime.scan import Scan, Stamp, is_candidate, rescan, scan

UTC = timezone.utc
GOOD = front_matter(**article_fields(title="Good one", webUrl="https://example.com/good"))


def only_problem(seeds_dir: Path) -> Problem:
    """Load the folder; assert the seeds still load and exactly one problem was found; return it."""
    result = load_folder(seeds_dir)
    assert len(result.articles) == 5
    assert len(result.problems) == 1, result.problems
    return result.problems[0]


def titles(result) -> set[str]:
    return {a.title for a in result.articles}


# --- real folders ----------------------------------------------------------------------------


def test_seeds_load_five_articles_one_published_no_problems():
    result = load_folder(SEEDS)
    assert len(result.articles) == 5
    assert [a.path for a in result.articles if a.is_published] == ["003_b297a05077328abf.txt"]
    assert result.problems == ()
    assert result.skipped == ()


def test_seeds_articles_are_named_relative_to_the_folder_in_order():
    paths = [a.path for a in load_folder(SEEDS).articles]
    assert paths == sorted(p.name for p in SEEDS.iterdir())


def test_seed_fields_are_read():
    article = next(a for a in load_folder(SEEDS).articles if a.path.startswith("003_"))
    assert article.url == "https://gizmodo.com/the-lapd-just-banned-its-officers-from-using-third-part-1845702878"
    assert article.published == datetime(2020, 11, 18, 2, 41, tzinfo=UTC)
    assert article.topics == ("Computer Vision", "AI")
    assert article.provider.name == "Gizmodo"
    assert len(article.related) == 3


def test_corpus_loads_all_forty_articles_without_problems():
    result = load_folder(CORPUS)
    assert len(result.articles) == 40
    assert sum(a.is_published for a in result.articles) == 12
    assert result.problems == ()


def test_folder_given_as_text_loads(seeds_dir):
    assert len(load_folder(str(seeds_dir)).articles) == 5


def test_missing_seeds_folder_raises_feedsvc_error(tmp_path):
    with pytest.raises(FeedsvcError, match="does not exist"):
        load_folder(tmp_path / "nowhere")


def test_a_file_instead_of_a_folder_raises_feedsvc_error(tmp_path):
    (tmp_path / "file.md").write_text(GOOD, encoding="utf-8")
    with pytest.raises(FeedsvcError, match="does not exist"):
        load_folder(tmp_path / "file.md")


def test_empty_folder_loads_nothing(tmp_path):
    result = load_folder(tmp_path)
    assert result.articles == () and result.problems == ()


# --- encodings and line ends -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bom.md", b"\xef\xbb\xbf" + GOOD.encode()),
        ("crlf.md", GOOD.replace("\n", "\r\n").encode()),
        ("cr.md", GOOD.replace("\n", "\r").encode()),
        ("bom-crlf.md", b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode()),
    ],
)
def test_bom_crlf_and_cr_files_load(seeds_dir, name, data):
    (seeds_dir / name).write_bytes(data)
    result = load_folder(seeds_dir)
    article = next(a for a in result.articles if a.path == name)
    assert article.title == "Good one"
    assert article.url == "https://example.com/good"
    assert result.problems == ()


def test_decode_strips_bom_and_folds_line_ends():
    assert decode(b"\xef\xbb\xbfa\r\nb\rc\n", "x.md") == "a\nb\nc\n"


def test_non_ascii_utf8_text_is_kept(seeds_dir, write_article):
    write_article("unicode.md", title="Café – “quoted” 日本")
    article = next(a for a in load_folder(seeds_dir).articles if a.path == "unicode.md")
    assert article.title == "Café – “quoted” 日本"


# --- split_front_matter ----------------------------------------------------------------------


def test_split_front_matter_returns_the_yaml_and_its_first_line():
    assert split_front_matter("---\na: 1\nb: 2\n---\nbody\n---\n", "x.md") == ("a: 1\nb: 2", 2)


def test_split_front_matter_allows_trailing_spaces_on_the_dashes():
    assert split_front_matter("---  \na: 1\n--- \n", "x.md") == ("a: 1", 2)


def test_split_front_matter_without_opening_dashes_is_an_error_on_line_one():
    with pytest.raises(ArticleError) as caught:
        split_front_matter("title: x\n", "x.md")
    assert (caught.value.line, caught.value.reason) == (1, "no front matter: the first line must be '---'")


# --- broken files become problems ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("title: no front matter\n", 1, "no front matter: the first line must be '---'"),
        ("\n---\ntitle: x\n---\n", 1, "no front matter: the first line must be '---'"),
        ("", 1, "no front matter: the first line must be '---'"),
        (
            "---\ntitle: x\nwebUrl: https://example.com/\n",
            1,
            "front matter is not closed: add a '---' line after the last field",
        ),
        ("---\n- a\n- b\n---\n", None, "front matter must be a mapping of fields (title: ..., webUrl: ...)"),
        ("---\njust a sentence\n---\n", None, "front matter must be a mapping of fields (title: ..., webUrl: ...)"),
        ("---\n---\n", None, "front matter must be a mapping of fields (title: ..., webUrl: ...)"),
    ],
    ids=["no-front-matter", "leading-blank-line", "empty-file", "unclosed", "root-list", "root-scalar", "empty-yaml"],
)
def test_unusable_file_is_skipped_with_a_problem(seeds_dir, write_article, text, line, message):
    write_article("broken.md", text=text)
    problem = only_problem(seeds_dir)
    assert problem == Problem("broken.md", message, "error", line)


@pytest.mark.parametrize(
    ("yaml_lines", "line"),
    [
        (["title: ok", "webUrl: [unclosed", "publishedDateTime: 2021-01-01"], 4),
        (["title: ok", "webUrl: https://example.com/", "  bad: indent"], 4),
        (["title: ok", "\tx: 1"], 3),
        (['title: "unclosed'], 2),
    ],
    ids=["unclosed-flow", "bad-indent", "tab", "unclosed-quote"],
)
def test_invalid_yaml_gives_a_reason_and_the_file_line(seeds_dir, write_article, yaml_lines, line):
    # The reason's wording is the YAML library's; feedsvc's part is the prefix and the file line.
    write_article("bad.md", text="---\n" + "\n".join(yaml_lines) + "\n---\n")
    problem = only_problem(seeds_dir)
    assert (problem.path, problem.line, problem.severity) == ("bad.md", line, "error")
    assert problem.message.startswith("invalid YAML: ") and len(problem.message) > len("invalid YAML: ")


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b""], ids=["bom", "no-bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_invalid_yaml_line_is_the_same_with_bom_or_crlf(seeds_dir, prefix, newline):
    (seeds_dir / "bad.md").write_bytes(
        prefix + newline.join([b"---", b"title: ok", b"webUrl: [x", b"a: 1", b"---", b""])
    )
    assert only_problem(seeds_dir).line == 4


def test_non_utf8_file_is_skipped_with_the_byte_offset(seeds_dir):
    (seeds_dir / "latin1.md").write_bytes("---\ntitle: café\n---\n".encode("latin-1"))
    problem = only_problem(seeds_dir)
    assert problem == Problem("latin1.md", "not UTF-8 text (byte 14): save the file as UTF-8", "error", None)


def test_missing_required_field_is_skipped_with_its_reason(seeds_dir, write_article):
    write_article("untitled.md", title=None)
    problem = only_problem(seeds_dir)
    assert problem.path == "untitled.md"
    assert problem.message == "title is missing: add 'title: \"...\"' to the front matter"


def test_problem_in_subfolder_is_named_relative_to_the_folder(seeds_dir, write_article):
    write_article("sub/deeper/x.md", text="no front matter\n")
    assert only_problem(seeds_dir).path == "sub/deeper/x.md"


def test_article_in_subfolder_is_loaded_with_its_relative_path(seeds_dir, write_article):
    write_article("sub/x.md", webUrl="https://example.com/sub")
    result = load_folder(seeds_dir)
    assert [a.path for a in result.articles if a.url == "https://example.com/sub"] == ["sub/x.md"]


def test_warnings_do_not_skip_the_file(seeds_dir, write_article):
    write_article("warned.md", published="maybe", webUrl="https://example.com/warned")
    result = load_folder(seeds_dir)
    assert len(result.articles) == 6
    assert result.skipped == ()
    assert [(p.path, p.severity) for p in result.problems] == [("warned.md", "warning")]


def test_one_broken_file_never_hides_the_others(seeds_dir, write_article):
    write_article("a-broken.md", text="---\ntitle: [\n---\n")
    write_article("b-good.md", webUrl="https://example.com/b")
    write_article("c-broken.md", text="nothing\n")
    write_article("d-good.md", webUrl="https://example.com/d")
    result = load_folder(seeds_dir)
    assert len(result.articles) == 7
    assert {a.path for a in result.articles} >= {"b-good.md", "d-good.md"}
    assert [p.path for p in result.skipped] == ["a-broken.md", "c-broken.md"]


def test_impossible_unquoted_date_is_a_problem_not_a_crash(seeds_dir, write_article):
    write_article("feb30.md", text="---\ntitle: x\nwebUrl: https://example.com/\npublishedDateTime: 2021-02-30\n---\n")
    problem = only_problem(seeds_dir)
    assert (problem.path, problem.severity) == ("feb30.md", "error")


@pytest.mark.parametrize("value", ["!!int abc", "!!bool abc", "!!timestamp abc"])
def test_bad_tagged_value_is_a_problem_not_a_crash(seeds_dir, write_article, value):
    write_article(
        "tagged.md", text=f"---\ntitle: {value}\nwebUrl: https://example.com/\npublishedDateTime: 2021-01-01\n---\n"
    )
    assert only_problem(seeds_dir).path == "tagged.md"


def test_date_out_of_utc_range_is_a_problem_not_a_crash(seeds_dir, write_article):
    write_article(
        "year1.md",
        text="---\ntitle: x\nwebUrl: https://example.com/\npublishedDateTime: 0001-01-01T00:00:00+01:00\n---\n",
    )
    assert only_problem(seeds_dir).path == "year1.md"


# --- building the fields read ------------------------------------------------------------------


def built(load) -> str:
    """The repr of what `load()` builds, or its error and message."""
    try:
        return repr(load())
    except (ValueError, yaml.YAMLError) as exc:
        return f"{type(exc).__name__}: {exc}"


# --- unsafe YAML -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/object:os.system"]
)
def test_python_object_tags_are_refused_not_executed(seeds_dir, tmp_path, write_article, tag):
    marker = tmp_path / "executed"
    write_article(
        "evil.md",
        text=f'---\ntitle: {tag} ["touch {marker}"]\nwebUrl: https://example.com/\n'
        "publishedDateTime: 2021-01-01\n---\n",
    )
    problem = only_problem(seeds_dir)
    assert not marker.exists()
    assert (problem.path, problem.line, problem.severity) == ("evil.md", 2, "error")
    assert problem.message.startswith("YAML tag ") and "is not allowed" in problem.message
    assert "python/object" in problem.message


def test_python_name_tag_is_refused(seeds_dir, write_article):
    write_article("evil.md", text="---\ntitle: !!python/name:os.system\n---\n")
    assert "python/name:os.system" in only_problem(seeds_dir).message


# --- which files are read --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        ".#x.md",
        "x.md~",
        ".x.swp",
        ".x.md.swp",
        "x.md.swp",
        "x.md.swo",
        "#x.md#",
        ".hidden.md",
        "x.md.bak",
        "x.md.orig",
        "x.tmp",
    ],
)
def test_hidden_files_and_editor_leftovers_are_not_read(seeds_dir, write_article, name):
    write_article(name, webUrl="https://example.com/leftover")
    write_article("visible.md", webUrl="https://example.com/visible")
    result = load_folder(seeds_dir)
    assert [a.url for a in result.articles if a.path in (name, "visible.md")] == ["https://example.com/visible"]
    assert result.problems == ()


@pytest.mark.parametrize("folder", [".git", ".hidden", "sub/.cache"])
def test_files_in_hidden_folders_are_not_read(seeds_dir, write_article, folder):
    write_article(f"{folder}/x.md", text="not an article\n")
    write_article("sub/visible.md", webUrl="https://example.com/visible")
    result = load_folder(seeds_dir)
    assert len(result.articles) == 6
    assert result.problems == ()


@pytest.mark.parametrize(("name", "expected"), [("a.md", True), ("a.txt", True), (".a.md", False), ("a.md~", False)])
def test_is_candidate(name, expected):
    assert is_candidate(name) is expected


# --- load_bytes and Problem ------------------------------------------------------------------


def test_load_bytes_returns_article_and_warnings():
    article, warnings = load_bytes(front_matter(**article_fields(published="perhaps")).encode(), "x.md")
    assert article.path == "x.md"
    assert article.is_published is False
    assert [(p.path, p.severity) for p in warnings] == [("x.md", "warning")]


def test_problem_str_with_line():
    assert str(Problem("sub/x.md", "invalid YAML: oops", "error", 4)) == "sub/x.md:4: error: invalid YAML: oops"


def test_problem_str_without_line():
    assert str(Problem("x.md", "title is missing", "error")) == "x.md: error: title is missing"


def test_problem_str_of_a_warning():
    assert str(Problem("x.md", "image dropped", "warning")) == "x.md: warning: image dropped"


def test_loaded_problem_str_names_file_and_line(seeds_dir, write_article):
    write_article("sub/bad.md", text="---\ntitle: ok\nwebUrl: [x\na: 1\n---\n")
    assert str(only_problem(seeds_dir)).startswith("sub/bad.md:4: error: invalid YAML: ")


# --- rescan: the previous scan brought up to date for the paths file events named ---------------

T0 = 1_600_000_000  # 2020-09-13T12:26:40Z: a fixed past instant for mtimes


def rescanned(root: Path, previous: Scan, *paths: Path) -> Scan | None:
    """rescan() as the watcher calls it (absolute paths as text); a result must equal a full scan."""
    found = rescan(root, previous, [str(p) for p in paths])
    if found is not None:
        full = scan(root)
        assert found.files == full.files
        assert list(found.files) == list(full.files)  # in name order, as scan() gives them
        assert found.newest_mtime_ns >= previous.newest_mtime_ns
    return found


def test_rescan_gives_an_edited_file_its_new_stamp(seeds_dir, write_article):
    path = write_article("x.md", title="Before")
    set_mtime(path, T0)
    previous = scan(seeds_dir)
    write_article("x.md", title="After the edit")
    set_mtime(path, T0 + 5)
    found = rescanned(seeds_dir, previous, path)
    assert found.files["x.md"] == Stamp(path.stat().st_size, (T0 + 5) * 1_000_000_000)
    assert found.files["x.md"] != previous.files["x.md"]


def test_rescan_adds_a_new_file_in_name_order(seeds_dir, write_article):
    previous = scan(seeds_dir)
    added = [write_article("000-first.md"), write_article("zzz-last.md"), write_article("004_between.txt")]
    found = rescanned(seeds_dir, previous, *added)
    assert set(found.files) - set(previous.files) == {"000-first.md", "zzz-last.md", "004_between.txt"}
    assert list(found.files) == sorted(found.files)


def test_rescan_adds_a_file_named_alone_in_a_new_subfolder(seeds_dir, write_article):
    previous = scan(seeds_dir)
    path = write_article("2021/01/new.md")
    assert "2021/01/new.md" in rescanned(seeds_dir, previous, path).files


def test_rescan_drops_a_removed_known_file(seeds_dir, write_article):
    path = write_article("sub/x.md")
    previous = scan(seeds_dir)
    path.unlink()
    found = rescanned(seeds_dir, previous, path)
    assert "sub/x.md" in previous.files and "sub/x.md" not in found.files
    assert len(found.files) == len(previous.files) - 1


def test_rescan_with_nothing_touched_is_the_previous_scan(seeds_dir):
    previous = scan(seeds_dir)
    assert rescanned(seeds_dir, previous) == previous


@pytest.mark.parametrize(
    "name",
    [".x.md", "x.md~", "x.md.swp", "#x.md#", ".#x.md", "x.md.tmp", ".git/x.md", "sub/.cache/x.md", ".hidden/sub/x.md"],
)
def test_rescan_ignores_hidden_paths_and_editor_leftovers(seeds_dir, write_article, name):
    previous = scan(seeds_dir)
    path = write_article(name)
    found = rescanned(seeds_dir, previous, path)
    assert found is not None and found.files == previous.files


@pytest.mark.parametrize("name", [".x.md", ".#x.md", ".git/x.md"])
def test_rescan_ignores_a_removed_hidden_file(seeds_dir, write_article, name):
    path = write_article(name)
    previous = scan(seeds_dir)
    path.unlink()
    found = rescanned(seeds_dir, previous, path)
    assert found is not None and found.files == previous.files


def test_rescan_of_a_leftover_that_replaces_a_known_file_drops_it(seeds_dir, write_article):
    path = write_article("x.md")
    previous = scan(seeds_dir)
    path.rename(seeds_dir / "x.md~")
    found = rescanned(seeds_dir, previous, path, seeds_dir / "x.md~")
    assert "x.md" not in found.files and "x.md~" not in found.files


def test_rescan_of_a_touched_folder_needs_a_full_scan(seeds_dir, write_article):
    previous = scan(seeds_dir)
    write_article("sub/deeper/x.md")
    assert rescan(seeds_dir, previous, [str(seeds_dir / "sub")]) is None
    assert rescan(seeds_dir, previous, [str(seeds_dir / "sub" / "deeper"), str(seeds_dir / "sub/deeper/x.md")]) is None


def test_rescan_of_a_folder_among_files_needs_a_full_scan(seeds_dir, write_article):
    previous = scan(seeds_dir)
    first = write_article("a.md")
    write_article("sub/x.md")
    assert rescan(seeds_dir, previous, [str(first), str(seeds_dir / "sub")]) is None


def test_rescan_of_an_unknown_path_that_is_gone_needs_a_full_scan(seeds_dir, write_article):
    write_article("sub/x.md")
    previous = scan(seeds_dir)
    (seeds_dir / "sub" / "x.md").rename(seeds_dir / "sub" / "y.md")
    (seeds_dir / "sub").rename(seeds_dir.parent / "moved-out")  # a folder moved out: one event, for the folder
    assert rescan(seeds_dir, previous, [str(seeds_dir / "sub")]) is None
    # A path that held no known file, and no known file below it, changes nothing.
    found = rescan(seeds_dir, previous, [str(seeds_dir / "never-there.md")])
    assert found is not None and found.files == previous.files


def test_rescan_of_the_root_or_a_path_outside_it_needs_a_full_scan(seeds_dir, tmp_path):
    previous = scan(seeds_dir)
    outside = tmp_path / "outside.md"
    outside.write_text(GOOD, encoding="utf-8")
    assert rescan(seeds_dir, previous, [str(seeds_dir)]) is None
    assert rescan(seeds_dir, previous, [str(outside)]) is None
    assert rescan(seeds_dir, previous, [str(tmp_path)]) is None


def test_rescan_newest_mtime_never_goes_backwards(seeds_dir, write_article):
    previous = scan(seeds_dir)
    path = write_article("x.md", title="Dated in the past")
    set_mtime(path, T0)
    found = rescanned(seeds_dir, previous, path)
    assert found.newest_mtime_ns >= previous.newest_mtime_ns
    path.unlink()
    assert rescanned(seeds_dir, found, path).newest_mtime_ns >= found.newest_mtime_ns


def test_rescan_newest_mtime_moves_forward_with_an_added_file(seeds_dir, write_article):
    previous = scan(seeds_dir)
    path = write_article("x.md")
    future = time.time() + 3600
    set_mtime(path, future)
    found = rescanned(seeds_dir, previous, path)
    assert found.newest_mtime_ns == int(future * 1_000_000_000) > previous.newest_mtime_ns


def test_rescan_counts_a_link_to_a_file_as_the_file(seeds_dir, tmp_path):
    target = tmp_path / "outside.md"
    target.write_text(GOOD, encoding="utf-8")
    set_mtime(target, T0)
    previous = scan(seeds_dir)
    link = seeds_dir / "link.md"
    link.symlink_to(target)
    found = rescanned(seeds_dir, previous, link)
    assert found.files["link.md"] == Stamp(target.stat().st_size, T0 * 1_000_000_000)


def test_rescan_leaves_out_a_link_to_a_folder(seeds_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.md").write_text(GOOD, encoding="utf-8")
    previous = scan(seeds_dir)
    link = seeds_dir / "linked"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    found = rescanned(seeds_dir, previous, link)
    assert found is not None and found.files == previous.files


def test_rescan_of_a_removed_leftover_it_never_knew_needs_no_full_scan(seeds_dir):
    backup = seeds_dir / "x.md~"  # vim's backup: written and removed on every save
    backup.write_text(GOOD, encoding="utf-8")
    previous = scan(seeds_dir)
    backup.unlink()
    found = rescan(seeds_dir, previous, [str(backup)])
    assert found is not None and found.files == previous.files


def test_rescan_of_a_removed_folder_of_known_files_needs_a_full_scan(seeds_dir):
    (seeds_dir / "sub").mkdir()
    (seeds_dir / "sub" / "x.md").write_text(GOOD, encoding="utf-8")
    previous = scan(seeds_dir)
    shutil.rmtree(seeds_dir / "sub")
    assert rescan(seeds_dir, previous, [str(seeds_dir / "sub")]) is None


def test_rescan_leaves_out_a_file_inside_a_linked_folder(seeds_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    link = seeds_dir / "linked"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    previous = scan(seeds_dir)
    (tmp_path / "elsewhere" / "x.md").write_text(GOOD, encoding="utf-8")
    found = rescan(seeds_dir, previous, [str(link / "x.md")])
    assert found is None or found.files == scan(seeds_dir).files


# Random edits, additions and removals among a few names (some hidden, some leftovers, some in
# subfolders): bringing the scan up to date from the touched paths alone (or, when rescan asks
# for it, by a full scan, as the store does) always gives what a full scan gives.
NAMES = [
    "a.md",
    "b.txt",
    "sub/c.md",
    "sub/deeper/d.md",
    ".hidden.md",
    "e.md~",
    "#f.md#",
    ".git/g.md",
    "sub/.cache/h.md",
]
STEPS = st.lists(
    st.lists(st.tuples(st.sampled_from(["write", "remove", "touch"]), st.sampled_from(NAMES), st.integers(0, 40)),
             min_size=1, max_size=4),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(steps=STEPS)
def test_rescan_after_random_changes_equals_a_full_scan(steps):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.md").write_text(GOOD, encoding="utf-8")
        known = scan(root)
        for tick, batch in enumerate(steps, start=1):
            for action, name, size in batch:
                path = root / name
                if action == "write":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(GOOD + "x" * size, encoding="utf-8")
                elif action == "touch" and path.exists():
                    set_mtime(path, T0 + tick * 60 + size)
                elif action == "remove":
                    path.unlink(missing_ok=True)
            found = rescan(root, known, [str(root / name) for _, name, _ in batch])
            full = scan(root)
            if found is not None:
                assert found.files == full.files and list(found.files) == list(full.files)
                assert found.newest_mtime_ns >= known.newest_mtime_ns
                assert found.newest_mtime_ns >= max((s.mtime_ns for s in found.files.values()), default=0)
            known = found or full


# --- refresh(names=...): only the named files are looked at -------------------------------------


@pytest.fixture
def parsed_here(monkeypatch) -> list[str]:
    """The file names feedsvc.content.files.load_named parses (in this process) from now on."""
    calls: list[str] = []
    real = feedsvc.content.files.load_named

    def spy(filename: str, name: str, *args, **kwargs):
        if os.getpid() == parent:
            calls.append(name)
        return real(filename, name, *args, **kwargs)

    parent = os.getpid()
    monkeypatch.setattr(feedsvc.runtime.loader, "load_named", spy)
    return calls


@pytest.fixture
def changed_folder(seeds_dir, write_article):
    """A loaded folder, then: edit.md edited, drop.md removed, add.md and sub/new.md added,
    broken.md broken (stale), keep.md untouched. Returns (states before, scan after, changed names)."""
    write_article("keep.md", title="Keep", webUrl="https://example.com/keep")
    write_article("edit.md", title="Before", webUrl="https://example.com/edit")
    write_article("broken.md", title="Good once", webUrl="https://example.com/broken")
    drop = write_article("drop.md", webUrl="https://example.com/drop")
    before = scan(seeds_dir)
    states = refresh(seeds_dir, {}, before)
    write_article("edit.md", title="After the edit", webUrl="https://example.com/edit")
    write_article("broken.md", text="---\ntitle: [never closed\n---\n")
    write_article("add.md", webUrl="https://example.com/add")
    write_article("sub/new.md", title=None)
    drop.unlink()
    after = scan(seeds_dir)
    changed = {name for name, _ in after.files.items() - before.files.items()}
    assert changed == {"edit.md", "broken.md", "add.md", "sub/new.md"}
    return states, after, changed


def test_refresh_with_names_parses_only_those_names(seeds_dir, changed_folder, parsed_here):
    states, found, _ = changed_folder
    new = refresh(seeds_dir, states, found, names=["add.md", "edit.md", "drop.md", "no-such.md"])
    assert sorted(parsed_here) == ["add.md", "edit.md"]
    assert new["edit.md"].article.title == "After the edit"
    assert new["add.md"].article.url == "https://example.com/add"
    # The files not named are not looked at: broken.md keeps its old state, sub/new.md is not there yet.
    assert new["broken.md"] is states["broken.md"]
    assert "sub/new.md" not in new


def test_refresh_with_names_reuses_every_other_state_and_drops_removed_files(seeds_dir, changed_folder):
    states, found, changed = changed_folder
    new = refresh(seeds_dir, states, found, names=changed)
    assert "drop.md" in states and "drop.md" not in new
    assert set(new) == set(found.files)
    for name in set(found.files) - changed:
        assert new[name] is states[name]
    assert new["broken.md"].stale and new["broken.md"].article is states["broken.md"].article
    assert new["sub/new.md"].article is None and new["sub/new.md"].problems[0].severity == "error"


def test_refresh_with_names_equals_a_full_refresh(seeds_dir, changed_folder):
    states, found, changed = changed_folder
    assert refresh(seeds_dir, states, found, names=changed) == refresh(seeds_dir, states, found)


def test_refresh_with_names_of_unchanged_files_parses_nothing(seeds_dir, changed_folder, parsed_here):
    states, found, _ = changed_folder
    new = refresh(seeds_dir, states, found, names=["keep.md"])
    assert parsed_here == []
    assert new["keep.md"] is states["keep.md"]


def test_refresh_that_finds_nothing_changed_gives_back_the_same_states(seeds_dir):
    # Not a copy: copying writes every state's refcount, which un-shares a forked worker's pages.
    found = scan(seeds_dir)
    states = refresh(seeds_dir, {}, found)
    assert refresh(seeds_dir, states, scan(seeds_dir), names=list(found.files)) is states
    assert refresh(seeds_dir, states, scan(seeds_dir), names=[]) is states


def test_refresh_with_names_keeps_the_files_in_name_order(seeds_dir, changed_folder):
    states, found, changed = changed_folder
    assert list(refresh(seeds_dir, states, found, names=changed)) == list(found.files)


# --- result_of and stale_names -------------------------------------------------------------------


def state(article=None, problems=(), stale=False) -> FileState:
    return FileState(Stamp(1, 1), article, tuple(problems), stale)


def test_result_of_no_states_is_empty():
    assert result_of({}) == LoadResult((), ())
    assert stale_names({}) == ()


def test_result_of_gives_the_served_articles_and_every_problem():
    good, _ = load_bytes(GOOD.encode(), "good.md")
    old, _ = load_bytes(GOOD.encode(), "old.md")
    warning = Problem("warned.md", "image dropped", "warning")
    error = Problem("bad.md", "no front matter", "error", 1)
    stale_error = Problem("old.md", "invalid YAML", "error", 2)
    states = {
        "bad.md": state(problems=[error]),
        "good.md": state(good),
        "old.md": state(old, [stale_error], stale=True),
        "warned.md": state(good, [warning]),
    }
    result = result_of(states)
    assert result.articles == (good, old, good)
    assert result.problems == (error, stale_error, warning)
    assert result.skipped == (error, stale_error)


def test_stale_names_are_the_stale_files_by_name():
    article, _ = load_bytes(GOOD.encode(), "x.md")
    states = {
        "z.md": state(article, stale=True),
        "a.md": state(article),
        "m.md": state(article, stale=True),
        "b.md": state(None),
    }
    assert stale_names(states) == ("m.md", "z.md")


# --- YAML merge keys ("<<"), which the subset builder hands to PyYAML ----------------------------

MERGED = """---
base: &base
  name: Example News
  domain: example.com
title: Merged
webUrl: https://example.com/merged
publishedDateTime: 2021-02-01T10:00:00Z
provider:
  <<: *base
  name: Merged News
related:
  - <<: {title: From a merge, webUrl: "https://example.com/m"}
    excerpt: kept
---
"""


@pytest.mark.parametrize(
    "text", [MERGED, MERGED.replace("<<: *base", "!!merge <<: *base")], ids=["implicit", "explicit"]
)
def test_merge_keys_are_applied_as_pyyaml_applies_them(text):
    article, _ = load_bytes(text.encode(), "m.md")
    assert article.provider.name == "Merged News" and article.provider.domain == "example.com"
    (link,) = article.related
    assert (link.title, link.url, link.excerpt) == ("From a merge", "https://example.com/m", "kept")


# --- reading files in pieces -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 200_000])
def test_read_at_most_reads_a_file_whole_across_pieces(tmp_path, size):
    path = tmp_path / "f.md"
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(data)
    assert feedsvc.content.files.read_at_most(str(path), 1_000_000) == data


def test_read_at_most_stops_one_byte_past_the_limit(tmp_path):
    path = tmp_path / "big.md"
    path.write_bytes(b"y" * 300_000)
    assert feedsvc.content.files.read_at_most(str(path), 100_000) == b"y" * 100_001


def test_an_article_longer_than_one_piece_loads_whole(tmp_path):
    excerpt = "word " * 40_000  # 200 KB: several reads
    (tmp_path / "long.md").write_text(front_matter(**article_fields(excerpt=excerpt)), encoding="utf-8")
    (article,) = load_folder(tmp_path, Limits(excerpt_chars=10**6)).articles
    assert article.excerpt == excerpt.strip()


# --- files that are not regular files, and folders that cannot be listed ----------------------------

FIFO_REASON = "is a FIFO (named pipe), not a regular file"
BOUND = 5.0  # seconds: a load that has not ended by then is blocked


def in_a_thread(work, seconds: float = BOUND):
    """work()'s result, run on a thread that must end within `seconds` (it fails the test if not)."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", work()), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return result["value"], time.monotonic() - started


def unblock_readers(fifo: Path) -> None:
    """Open `fifo` for writing once, so a reader blocked in open() on it (the bug) returns."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader waits on it (ENXIO), or it is gone


def test_a_fifo_in_the_folder_is_skipped_with_its_reason_and_the_load_ends(seeds_dir):
    fifo = seeds_dir / "pipe.md"
    os.mkfifo(fifo)  # nobody will ever write to it
    try:
        result, seconds = in_a_thread(lambda: load_folder(seeds_dir))
    finally:
        unblock_readers(fifo)
    assert len(result.articles) == 5
    (problem,) = result.skipped
    assert problem.path == "pipe.md" and problem.message.startswith(FIFO_REASON), problem
    assert "remove it" in problem.message
    print(f"load of the seeds with a FIFO among them: {seconds * 1000:.1f} ms")


def test_a_file_swapped_for_a_fifo_between_scan_and_read_is_skipped_not_waited_for(seeds_dir, write_article):
    path = write_article("swapped.md", webUrl="https://example.com/swapped")
    found = scan(seeds_dir)
    assert "swapped.md" in found.files
    path.unlink()
    os.mkfifo(path)  # the swap lands after the scan, before the read
    try:
        states, _ = in_a_thread(lambda: refresh(seeds_dir, {}, found))
    finally:
        unblock_readers(path)
    assert states["swapped.md"].article is None
    assert states["swapped.md"].problems[0].message.startswith(FIFO_REASON)
    assert sum(state.article is not None for state in states.values()) == 5


def test_a_fifo_swapped_in_for_a_good_file_keeps_its_last_good_version_stale(seeds_dir, write_article):
    path = write_article("swapped.md", title="Good", webUrl="https://example.com/swapped")
    before = refresh(seeds_dir, {}, scan(seeds_dir))
    path.unlink()
    os.mkfifo(path)
    try:
        states, _ = in_a_thread(lambda: refresh(seeds_dir, before, scan(seeds_dir)))
    finally:
        unblock_readers(path)
    assert states["swapped.md"].stale and states["swapped.md"].article.title == "Good"


def test_a_socket_in_the_folder_is_skipped_as_a_socket(seeds_dir, monkeypatch):
    monkeypatch.chdir(seeds_dir)  # a relative name: a socket's path is limited to about 100 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("listening.md")
        (problem,) = load_folder(seeds_dir).skipped
    assert problem.path == "listening.md"
    assert problem.message.startswith("is a socket, not a regular file"), problem


def test_read_at_most_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(feedsvc.content.files.NotRegularFile, match="FIFO"):
        feedsvc.content.files.read_at_most(str(tmp_path / "fifo"), 100)
    with pytest.raises(feedsvc.content.files.NotRegularFile, match="character device"):
        feedsvc.content.files.read_at_most(os.devnull, 100)


def test_rescan_of_a_fifo_names_it_as_a_full_scan_does(seeds_dir):
    known = scan(seeds_dir)
    os.mkfifo(seeds_dir / "pipe.md")
    found = rescan(seeds_dir, known, [str(seeds_dir / "pipe.md")])
    assert found is not None and found.files == scan(seeds_dir).files
    assert "pipe.md" in found.files


def test_scan_reports_a_folder_it_cannot_list_instead_of_dropping_its_files(unlisted_folder):
    seeds, lock = unlisted_folder
    assert set(scan(seeds).files) == {"a.md", "sub/b.md", "sub/c.md"}
    lock()
    found = as_unprivileged(lambda: scan(seeds)._asdict())
    assert list(found["files"]) == ["a.md"]
    assert found["unreadable"] == {"sub": os.strerror(errno.EACCES)}


def test_load_folder_names_a_folder_it_cannot_list_as_a_problem(unlisted_folder):
    seeds, lock = unlisted_folder
    lock()
    result = as_unprivileged(lambda: [(p.path, p.severity, p.message) for p in load_folder(seeds).problems])
    ((path, severity, message),) = result
    assert (path, severity) == ("sub", "error")
    assert "cannot be listed" in message and "permission" in message


def test_a_link_to_a_folder_is_still_left_out_by_scan(seeds_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.md").write_text(GOOD, encoding="utf-8")
    (seeds_dir / "linked").symlink_to(tmp_path / "elsewhere")
    assert not any(name.startswith("linked") for name in scan(seeds_dir).files)
    assert load_folder(seeds_dir).problems == ()


def test_a_large_load_on_every_core_equals_one_in_this_process(seeds_dir, write_article, monkeypatch):
    for i in range(24):
        write_article(f"p{i:02}.md", webUrl=f"https://example.com/p{i}", title=None if i == 5 else f"P {i}")
    here = load_folder(seeds_dir)
    monkeypatch.setattr(feedsvc.runtime.loader, "PARALLEL_MIN_FILES", 4)
    monkeypatch.setattr(feedsvc.runtime.loader, "PARALLEL_BATCH", 3)
    monkeypatch.setattr(feedsvc.runtime.loader, "usable_cores", lambda: 3)
    calls, real = [], feedsvc.runtime.loader.parse_on_every_core
    monkeypatch.setattr(feedsvc.runtime.loader, "parse_on_every_core", lambda *a: calls.append(a) or real(*a))
    if threading.active_count() != 1:
        pytest.skip(f"other threads run ({threading.enumerate()}): the load must not fork")
    pooled = load_folder(seeds_dir)
    assert len(calls) == 1
    assert pooled == here
    assert [p.path for p in pooled.skipped] == ["p05.md"]
    # Shared objects stay shared when the results come back pickled from the workers.
    providers = {id(a.provider) for a in pooled.articles if a.provider and a.provider.name == "Example News"}
    assert len(providers) == 1
