"""The `feedsvc` command: `check` lints a folder, `serve` runs a real production server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FEEDSVC, check_rss, free_port, wait_for

from feedsvc.cli import main


def test_check_clean_folder_exits_0(seeds_dir: Path, capsys) -> None:
    assert main(["check", str(seeds_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "5 articles, 0 files skipped" in captured.err


def test_check_corpus_sample_is_clean(corpus_dir: Path, capsys) -> None:
    assert main(["check", str(corpus_dir)]) == 0


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("no-front.md", "just text\n", "no-front.md:1: error: no front matter"),
        ("open.md", "---\ntitle: x\n", "open.md:1: error: front matter is not closed"),
        ("bad-yaml.md", "---\ntitle: [unclosed\n---\n", "bad-yaml.md:3: error: invalid YAML"),
        (
            "sub/no-title.md",
            "---\nwebUrl: https://a.example/\npublishedDateTime: 2021-01-01\n---\n",
            "sub/no-title.md: error: title is missing",
        ),
    ],
)
def test_check_reports_each_problem_as_path_line_severity(
    write_article, seeds_dir, capsys, name, text, expected
) -> None:
    write_article(name, text=text)
    assert main(["check", str(seeds_dir)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(expected) for line in lines), lines


def test_check_warnings_alone_exit_0(write_article, seeds_dir, capsys) -> None:
    write_article("warn.md", related=[{"title": "no url"}])
    assert main(["check", str(seeds_dir)]) == 0
    assert capsys.readouterr().out.startswith("warn.md: warning: related link 1 dropped")


def run_check(folder: Path) -> subprocess.CompletedProcess:
    """The installed `feedsvc check FOLDER`, as a shell or a pre-commit hook runs it (its own logging set-up)."""
    command = [str(FEEDSVC)] if FEEDSVC.exists() else [sys.executable, "-m", "feedsvc.cli"]
    env = {**os.environ, "FEEDSVC_CACHE_DIR": ""}
    arguments = [*command, "check", str(folder)]
    return subprocess.run(arguments, check=False, capture_output=True, text=True, timeout=60, env=env)


def test_check_prints_each_problem_once_and_a_summary_in_the_right_number(write_article, seeds_dir) -> None:
    write_article("bad-yaml.md", text="---\ntitle: [unclosed\n---\n")
    write_article("warn.md", related=[{"title": "no url"}])
    result = run_check(seeds_dir)
    assert result.returncode == 1
    report = result.stdout.splitlines()
    assert [line.split(": ")[:2] for line in report] == [["bad-yaml.md:3", "error"], ["warn.md", "warning"]]
    for line in report:  # the report on stdout only, never repeated by the log on stderr
        assert line.split(": ", 2)[2] not in result.stderr
    assert result.stderr.splitlines() == ["6 articles, 1 file skipped, 1 error, 1 warning"]


def test_check_counts_in_the_plural(write_article, seeds_dir) -> None:
    write_article("one.md", text="just text\n")
    write_article("two.md", text="just text\n")
    result = run_check(seeds_dir)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["5 articles, 2 files skipped, 2 errors, 0 warnings"]
    for name in ("one.md", "two.md"):
        (seeds_dir / name).unlink()
    for name in [p.name for p in seeds_dir.iterdir()][1:]:
        (seeds_dir / name).unlink()
    result = run_check(seeds_dir)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == ["1 article, 0 files skipped, 0 errors, 0 warnings"]


def test_check_missing_folder_exits_1(tmp_path: Path, capsys) -> None:
    assert main(["check", str(tmp_path / "absent")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_check_defaults_to_configured_folder(seeds_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FEEDSVC_SEEDS_DIR", str(seeds_dir))
    (seeds_dir / "broken.md").write_text("---\n")
    assert main(["check"]) == 1
    assert capsys.readouterr().out.startswith("broken.md:1: error")


@pytest.mark.slow
def test_serve_runs_granian_and_stops_cleanly_on_sigterm(seeds_dir: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "feedsvc.cli", "serve", "--seeds", str(seeds_dir), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        body = wait_for(f"http://127.0.0.1:{port}/topics/ai/rss.xml")
        check_rss(body)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    assert f"Listening at: http://127.0.0.1:{port}" in output  # granian's own log lines
    assert "Granian shutdown completed" in output
