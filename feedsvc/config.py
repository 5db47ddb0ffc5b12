"""Settings: defaults, then FEEDSVC_* environment variables, then what the caller passes. One path
for every setting, the server's and the CLI's included; no web stack."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `feedsvc build` over unchanged files loads no parser (feedsvc.manifest)
    from feedsvc.content.fields import Limits

ENV_PREFIX = "FEEDSVC_"

PROJECT_SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def default_cache_dir() -> Path:
    """The user's cache folder (XDG Base Directory spec): $XDG_CACHE_HOME/feedsvc or ~/.cache/feedsvc
    (a relative XDG_CACHE_HOME is invalid by the spec, and ignored)."""
    configured = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(configured) if os.path.isabs(configured) else Path.home() / ".cache") / "feedsvc"


def default_config() -> dict[str, Any]:
    """The settings a bare `create_app()` runs with."""
    return {
        "SEEDS_DIR": str(PROJECT_SEEDS if PROJECT_SEEDS.is_dir() else Path.cwd() / "seeds"),
        "DEFAULT_LIMIT": 50,
        "MAX_LIMIT": 500,
        "BASE_URL": None,  # None: the URL the request came to
        "SITE_TITLE": "feedsvc",
        "FEED_AUTHOR": "feedsvc",
        "MAX_AGE": 300,  # seconds: Cache-Control max-age and RSS <ttl>
        "RELOAD_INTERVAL": 2,  # seconds between checks for changed files when polling; 0: no reloads
        "WATCH_EVENTS": True,  # reload on file-system events (inotify) instead of polling
        "RESCAN_INTERVAL": 60,  # seconds between full scans when following events (events can be lost)
        "RELOAD_STUCK_AFTER": 120,  # seconds a reload may run before /healthz calls this worker unhealthy
        "RENDER_CACHE_SIZE": 512,  # rendered bodies kept (LRU), and finished responses kept by the fast path
        "RENDER_CACHE_BYTES": 64 * 1024 * 1024,  # at most this many bytes of them, in each of the two caches
        # Filtered feeds (every distinct filter is another URL) are kept apart, in this many, so a
        # stream of them cannot push the unfiltered feeds out.
        "FILTERED_CACHE_SIZE": 64,
        "FILTERED_CACHE_BYTES": 8 * 1024 * 1024,
        "DEDUPE_TITLES": False,  # the default of ?dedupe=: one entry per story (same title at several URLs)
        "FAST_PATH": True,  # replay finished feed responses in front of Flask
        "FEED_PAGING": True,  # RFC 5005 paging links (first/last/previous/next) in every feed
        "WEBSUB_HUB": None,  # URL of a WebSub hub to advertise and notify
        "CACHE_DIR": str(default_cache_dir()),  # parse cache; "" turns it off
        "PREVIEW_TOKEN": None,  # when set, include=all needs token=<it>
        "METRICS": False,  # serve /metrics (Prometheus text format); off: /metrics is a 404
        "MAX_FILE_BYTES": 1_000_000,  # a larger article file is skipped
        "MAX_TITLE_CHARS": 300,  # longer titles are cut at a word boundary
        "MAX_EXCERPT_CHARS": 1_000,  # longer excerpts are cut at a word boundary
        # `feedsvc serve` (feedsvc.server): where it listens, and its limits.
        "HOST": "127.0.0.1",
        "PORT": 8000,
        "WORKERS": 2,
        "IDLE_TIMEOUT": 15,  # seconds a connection may take to send a whole request head, or sit idle
        "MAX_CONNECTIONS": 4096,  # open connections per worker; more wait in the listen backlog
    }


# Read as they are; every other FEEDSVC_* value is JSON-decoded where it parses (60, true, null),
# as Flask's Config.from_prefixed_env does: a token "20240611" must stay text.
TEXT_SETTINGS = (
    "SEEDS_DIR",
    "BASE_URL",
    "SITE_TITLE",
    "FEED_AUTHOR",
    "CACHE_DIR",
    "PREVIEW_TOKEN",
    "WEBSUB_HUB",
    "HOST",
)


def limits_of(config: Mapping[str, Any]) -> Limits:
    """The loader's size limits from a config mapping."""
    from feedsvc.content.fields import Limits

    return Limits(config["MAX_FILE_BYTES"], config["MAX_TITLE_CHARS"], config["MAX_EXCERPT_CHARS"])


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings FEEDSVC_* variables give (FEEDSVC_MAX_AGE=60 -> MAX_AGE: 60)."""
    settings: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        key = name[len(ENV_PREFIX) :]
        try:
            settings[key] = raw if key in TEXT_SETTINGS else json.loads(raw)
        except ValueError:
            settings[key] = raw
    return settings


def create_config(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Defaults, then FEEDSVC_* environment variables, then `config`."""
    return {**default_config(), **from_environment(os.environ if environ is None else environ), **(config or {})}
