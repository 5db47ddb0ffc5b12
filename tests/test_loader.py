"""load_folder and its steps: every good file loads, every bad one becomes a useful Problem."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import CORPUS, SEEDS, article_fields, front_matter
from feedsvc.errors import ArticleError, FeedsvcError
from feedsvc.loader import decode, is_candidate, load_bytes, load_folder, split_front_matter
from feedsvc.model import Problem

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
        ("---\ntitle: x\nwebUrl: https://example.com/\n", 1, "front matter is not closed: add a '---' line after the last field"),
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
    ("yaml_lines", "line", "reason"),
    [
        (["title: ok", "webUrl: [unclosed", "publishedDateTime: 2021-01-01"], 4, "did not find expected ',' or ']'"),
        (["title: ok", "webUrl: https://example.com/", "  bad: indent"], 4, "mapping values are not allowed in this context"),
        (["title: ok", "\tx: 1"], 3, "found a tab character that violates indentation"),
        (["title: \"unclosed"], 2, "found unexpected end of stream"),
    ],
    ids=["unclosed-flow", "bad-indent", "tab", "unclosed-quote"],
)
def test_invalid_yaml_gives_the_reason_and_the_file_line(seeds_dir, write_article, yaml_lines, line, reason):
    write_article("bad.md", text="---\n" + "\n".join(yaml_lines) + "\n---\n")
    problem = only_problem(seeds_dir)
    assert (problem.path, problem.line, problem.severity) == ("bad.md", line, "error")
    assert problem.message == f"invalid YAML: {reason}"


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b""], ids=["bom", "no-bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_invalid_yaml_line_is_the_same_with_bom_or_crlf(seeds_dir, prefix, newline):
    (seeds_dir / "bad.md").write_bytes(prefix + newline.join([b"---", b"title: ok", b"webUrl: [x", b"a: 1", b"---", b""]))
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
    write_article("tagged.md", text=f"---\ntitle: {value}\nwebUrl: https://example.com/\npublishedDateTime: 2021-01-01\n---\n")
    assert only_problem(seeds_dir).path == "tagged.md"


def test_date_out_of_utc_range_is_a_problem_not_a_crash(seeds_dir, write_article):
    write_article("year1.md", text="---\ntitle: x\nwebUrl: https://example.com/\npublishedDateTime: 0001-01-01T00:00:00+01:00\n---\n")
    assert only_problem(seeds_dir).path == "year1.md"


# --- unsafe YAML -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/object:os.system"]
)
def test_python_object_tags_are_refused_not_executed(seeds_dir, tmp_path, write_article, tag):
    marker = tmp_path / "executed"
    write_article("evil.md", text=f"---\ntitle: {tag} [\"touch {marker}\"]\nwebUrl: https://example.com/\n"
                                   "publishedDateTime: 2021-01-01\n---\n")
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
    [".#x.md", "x.md~", ".x.swp", ".x.md.swp", "x.md.swp", "x.md.swo", "#x.md#", ".hidden.md", "x.md.bak", "x.md.orig", "x.tmp"],
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
    assert str(only_problem(seeds_dir)) == "sub/bad.md:4: error: invalid YAML: did not find expected ',' or ']'"
