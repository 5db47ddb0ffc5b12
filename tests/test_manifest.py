"""feedsvc.manifest: `feedsvc build` over the inputs of the last build of its folder exits after the
stat scan, loading no parser, renderer or web stack; any change of a source file, a setting, the
code or the output tree builds again, to the bytes a build from nothing writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import OLD_TITLE, PUBLISHED, article_text

from feedsvc.cli import main
from feedsvc.manifest import environment_digest, installed

BASE = "https://static.example.org/news/"
NOTHING_TO_DO = "nothing to do"  # the line a build that took the shortcut prints


def run_build(capsys, outdir: Path, seeds: Path, *extra: str, base: str = BASE) -> tuple[int, str]:
    code = main(["build", str(outdir), "--base-url", base, "--seeds", str(seeds), *extra])
    return code, capsys.readouterr().err


def files_of(outdir: Path) -> dict[str, bytes]:
    """Every regular file under `outdir`, by relative path."""
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


def built_from_nothing(capsys, monkeypatch, outdir: Path, seeds: Path, base: str = BASE) -> dict[str, bytes]:
    """The tree a build with no cache folder (so no manifest and no parse cache) writes."""
    with monkeypatch.context() as patch:
        patch.setenv("FEEDSVC_CACHE_DIR", "")
        code, err = run_build(capsys, outdir, seeds, base=base)
    assert code == 0, err
    return files_of(outdir)


def shift_mtime(path: Path, seconds: int = 5) -> None:
    """Move a file's mtime by whole seconds: an edit a coarse clock could not tell from the last."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + seconds * 10**9))


def edit_title(seeds: Path, outdir: Path, monkeypatch) -> str:
    path = seeds / PUBLISHED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_TITLE, "A corrected title"), encoding="utf-8")
    return BASE


def edit_keeping_the_size(seeds: Path, outdir: Path, monkeypatch) -> str:
    path = seeds / PUBLISHED
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(OLD_TITLE, OLD_TITLE.replace("LAPD", "NYPD")), encoding="utf-8")
    assert path.stat().st_size == len(text.encode())
    shift_mtime(path)
    return BASE


def touch(seeds: Path, outdir: Path, monkeypatch) -> str:
    shift_mtime(seeds / PUBLISHED)
    return BASE


def add(seeds: Path, outdir: Path, monkeypatch) -> str:
    (seeds / "new.md").write_text(
        article_text(title="Brand new", topics=["AI"], webUrl="https://news.example.com/new"), encoding="utf-8"
    )
    return BASE


def delete(seeds: Path, outdir: Path, monkeypatch) -> str:
    (seeds / PUBLISHED).unlink()
    return BASE


def other_base_url(seeds: Path, outdir: Path, monkeypatch) -> str:
    return "https://elsewhere.example.net/"


def other_setting(seeds: Path, outdir: Path, monkeypatch) -> str:
    monkeypatch.setenv("FEEDSVC_SITE_TITLE", "Another title")
    return BASE


def output_file_edited(seeds: Path, outdir: Path, monkeypatch) -> str:
    (outdir / "rss.xml").write_bytes(b"<rss>tampered</rss>")
    return BASE


def output_file_removed(seeds: Path, outdir: Path, monkeypatch) -> str:
    (outdir / "atom.xml").unlink()
    return BASE


def output_tree_removed(seeds: Path, outdir: Path, monkeypatch) -> str:
    shutil.rmtree(outdir)
    return BASE


CHANGES = [edit_title, edit_keeping_the_size, touch, add, delete, other_base_url, other_setting, output_file_edited,
           output_file_removed, output_tree_removed]  # fmt: skip


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_any_change_builds_again_to_the_bytes_of_a_build_from_nothing(tmp_path, capsys, monkeypatch, seeds_dir, change):
    outdir = tmp_path / "site"
    assert run_build(capsys, outdir, seeds_dir)[0] == 0
    code, err = run_build(capsys, outdir, seeds_dir)
    assert code == 0 and NOTHING_TO_DO in err  # the shortcut is taken before the change...

    base = change(seeds_dir, outdir, monkeypatch)
    code, err = run_build(capsys, outdir, seeds_dir, base=base)
    assert code == 0, err
    assert NOTHING_TO_DO not in err  # ...and not after it
    assert files_of(outdir) == built_from_nothing(capsys, monkeypatch, tmp_path / "fresh", seeds_dir, base)
    code, err = run_build(capsys, outdir, seeds_dir, base=base)
    assert code == 0 and NOTHING_TO_DO in err  # the new tree is recorded in turn


def test_the_shortcut_answers_as_the_build_it_stands_for(tmp_path, capsys, seeds_dir):
    outdir = tmp_path / "site"
    code, err = run_build(capsys, outdir, seeds_dir)
    assert code == 0
    files = len(files_of(outdir))
    before = {p: p.stat() for p in outdir.rglob("*")}
    code, err = run_build(capsys, outdir, seeds_dir)
    assert code == 0
    assert err.splitlines()[-1] == f"{outdir}: 0 files written, {files} unchanged"
    assert {p: p.stat() for p in outdir.rglob("*")} == before


def test_a_strict_build_after_a_lenient_one_still_refuses_a_folder_with_errors(tmp_path, capsys, seeds_dir):
    (seeds_dir / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    outdir = tmp_path / "site"
    code, err = run_build(capsys, outdir, seeds_dir)
    assert code == 0, err
    code, err = run_build(capsys, outdir, seeds_dir)
    assert code == 0 and NOTHING_TO_DO in err and "1 file(s) skipped" in err
    code, err = run_build(capsys, outdir, seeds_dir, "--strict")
    assert code == 1 and "1 file(s) have errors" in err


def test_without_a_cache_folder_every_build_renders(tmp_path, capsys, monkeypatch, seeds_dir):
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", "")
    outdir = tmp_path / "site"
    for _ in range(2):
        code, err = run_build(capsys, outdir, seeds_dir)
        assert code == 0 and NOTHING_TO_DO not in err


def test_a_build_over_unchanged_inputs_loads_no_parser_renderer_or_web_stack(tmp_path, seeds_dir):
    heavy = ["flask", "werkzeug", "feedgen", "jinja2", "lxml", "yaml", "yaml_rs", "dateutil", "feedsvc.content.fields"]
    code = (
        "import sys, feedsvc.cli\n"
        "code = feedsvc.cli.main(['build', sys.argv[1], '--seeds', sys.argv[2]])\n"
        f"print(code, sorted(set(sys.modules) & set({heavy!r})))"
    )
    command = [sys.executable, "-c", code, str(tmp_path / "site"), str(seeds_dir)]
    env = {**os.environ, "FEEDSVC_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert first.returncode == 0 and first.stdout.split()[0] == "0", first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert again.returncode == 0, again.stderr
    assert NOTHING_TO_DO in again.stderr
    assert again.stdout.strip() == "0 []"


def test_the_environment_digest_follows_every_file_of_the_code_and_the_strict_flag(tmp_path, seeds_dir):
    code = tmp_path / "code"
    (code / "web" / "templates").mkdir(parents=True)
    template = code / "web" / "templates" / "index.html"
    template.write_text("<p>{{ site.title }}</p>", encoding="utf-8")
    settings = {"SEEDS_DIR": str(seeds_dir), "BASE_URL": BASE}
    first = environment_digest(settings, strict=False, code_root=code)
    assert environment_digest(settings, strict=False, code_root=code) == first
    template.write_text("<p>{{ site.title }}!</p>", encoding="utf-8")
    edited = environment_digest(settings, strict=False, code_root=code)
    assert edited != first
    (code / "web" / "extra.py").write_text("", encoding="utf-8")
    added = environment_digest(settings, strict=False, code_root=code)
    assert added not in (first, edited)
    assert environment_digest(settings, strict=True, code_root=code) != added


def test_installed_packages_are_named_with_their_versions(tmp_path):
    packages = tmp_path / "lib" / "site-packages"
    (packages / "lxml-5.3.0.dist-info").mkdir(parents=True)
    before = installed([str(packages), str(tmp_path)])
    (packages / "lxml-5.3.0.dist-info").rename(packages / "lxml-6.0.0.dist-info")
    after = installed([str(packages), str(tmp_path)])
    assert before != after and list(after) == [str(packages)]
