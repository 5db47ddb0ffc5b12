"""Shared fixtures: an app over a private copy of the seeds, its client and CLI runner, and the
fixtures more than one module uses. Helpers that are not fixtures are in helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import CORPUS, SEEDS, article_fields, front_matter, unprivileged_ids, world_readable_folder

import feedsvc.content.files
import feedsvc.runtime.loader
from feedsvc import create_app


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    """A writable copy of the project's seeds."""
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture(scope="session")
def read_only_folders(tmp_path_factory) -> Path:
    """One copy of the seeds and of the corpus (seeds/, corpus/) for the tests that never change them."""
    root = tmp_path_factory.mktemp("read-only")
    shutil.copytree(SEEDS, root / "seeds")
    shutil.copytree(CORPUS, root / "corpus")
    return root


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A writable copy of the real-world sample corpus (quirks included)."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path: Path, monkeypatch) -> Path:
    """Every test's parse cache lives in its own folder, never in the user's ~/.cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def load_calls(monkeypatch) -> list[str]:
    """The file names feedsvc.content.files.load_named parses from now on."""
    calls: list[str] = []
    real = feedsvc.content.files.load_named

    def spy(filename: str, name: str, *args, **kwargs):
        calls.append(name)
        return real(filename, name, *args, **kwargs)

    monkeypatch.setattr(feedsvc.runtime.loader, "load_named", spy)
    return calls


@pytest.fixture
def app(seeds_dir: Path):
    """The app over the seeds copy."""
    return create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0})


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner of `app`."""
    return app.test_cli_runner()


@pytest.fixture
def corpus_client(corpus_dir: Path):
    """A test client of an app over the sample corpus."""
    return create_app({"TESTING": True, "SEEDS_DIR": str(corpus_dir), "RELOAD_INTERVAL": 0}).test_client()


@pytest.fixture
def write_article(seeds_dir: Path):
    """Write an article file into the seeds copy: write_article("x.md", title=...)."""

    def write(name: str, text: str | None = None, **overrides) -> Path:
        path = seeds_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else front_matter(**article_fields(**overrides)), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_client(seeds_dir: Path):
    """Build a client over the seeds copy as it is now (after write_article calls)."""

    def make(**config):
        return create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, **config}).test_client()

    return make


@pytest.fixture
def unlisted_folder():
    """(seeds, lock): a seeds folder with a.md and sub/{b,c}.md that as_unprivileged's user owns
    (it can change their modes), and the function that takes every permission off sub/. All of
    it is put back and removed when the test ends."""
    uid, gid = unprivileged_ids()
    root = world_readable_folder()
    seeds = root / "seeds"
    (seeds / "sub").mkdir(parents=True)
    for name in ("a.md", "sub/b.md", "sub/c.md"):
        (seeds / name).write_text(
            front_matter(**article_fields(webUrl=f"https://example.com/{name}")), encoding="utf-8"
        )
    for folder, names, files in os.walk(root):
        for path in [folder, *(os.path.join(folder, name) for name in names + files)]:
            os.chown(path, uid, gid)
    yield seeds, lambda: (seeds / "sub").chmod(0)
    (seeds / "sub").chmod(0o755)
    shutil.rmtree(root)
