"""feedsvc.config: one path for every setting: defaults, then FEEDSVC_* variables, then the caller's."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import pytest

from feedsvc import create_app
from feedsvc.config import create_config, default_cache_dir, default_config


def test_defaults_then_environment_then_the_callers_settings():
    environ = {"FEEDSVC_MAX_AGE": "60", "FEEDSVC_PORT": "9000", "FEEDSVC_WATCH_EVENTS": "false", "OTHER": "x"}
    settings = create_config({"PORT": 9100}, environ=environ)
    assert settings["MAX_AGE"] == 60 and settings["WATCH_EVENTS"] is False  # JSON-decoded
    assert settings["PORT"] == 9100  # the caller's wins
    assert settings["DEFAULT_LIMIT"] == default_config()["DEFAULT_LIMIT"]
    assert "OTHER" not in settings


def test_text_settings_stay_text():
    environ = {"FEEDSVC_PREVIEW_TOKEN": "20240611", "FEEDSVC_HOST": "::1", "FEEDSVC_SITE_TITLE": "true"}
    settings = create_config(environ=environ)
    assert (settings["PREVIEW_TOKEN"], settings["HOST"], settings["SITE_TITLE"]) == ("20240611", "::1", "true")


def test_a_value_that_is_not_json_is_text():
    assert create_config(environ={"FEEDSVC_BASE_URL": "https://feeds.example/"})["BASE_URL"] == "https://feeds.example/"


def test_the_app_factory_sets_no_signal_handler_and_no_logging(seeds_dir):
    handler, handlers = signal.getsignal(signal.SIGHUP), list(logging.getLogger().handlers)
    create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0})
    assert signal.getsignal(signal.SIGHUP) is handler
    assert logging.getLogger().handlers == handlers


def test_importing_feedsvc_or_running_check_loads_no_web_stack_and_no_renderer(seeds_dir):
    code = (
        "import sys, feedsvc, feedsvc.cli\n"
        "feedsvc.cli.main(['check', sys.argv[1]])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'werkzeug', 'feedgen', 'jinja2', 'granian'}))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(seeds_dir)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("[]"), done.stdout


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "feedsvc"


@pytest.mark.parametrize("xdg", [None, "", "relative/cache"], ids=["unset", "empty", "relative"])
def test_default_cache_dir_falls_back_to_dot_cache_in_home(tmp_path, monkeypatch, xdg):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "feedsvc"
