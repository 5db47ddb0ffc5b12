"""/metrics: off by default; on, the Prometheus text format, read here with prometheus_client's
own parser: requests by route kind, status and what answered them, render-cache look-ups,
reloads, the folder's public figures (never a draft's); under `feedsvc serve`, every worker's
counts summed (prometheus_client's multiprocess mode), and a load test with wrk."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import Server, get_ok, serving, wait_until
from prometheus_client.parser import text_string_to_metric_families

from feedsvc.errors import FeedsvcError
from feedsvc.server import metrics_folder
from feedsvc.web.metrics import route_kind

TOKEN = "preview-secret"


def scrape(client) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} of one GET /metrics."""
    response = get_ok(client, "/metrics")
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """The samples of a text exposition, by name and labels."""
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def requests_by(samples: dict, *labels: str) -> Counter:
    """feedsvc_http_requests_total summed by the given labels (non-zero entries only)."""
    counts: Counter = Counter()
    for key, value in samples.get("feedsvc_http_requests_total", {}).items():
        counts[tuple(dict(key)[label] for label in labels)] += value
    return +counts


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when it is not there)."""
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


@pytest.fixture
def metrics_client(make_client):
    return make_client(METRICS=True, PREVIEW_TOKEN=TOKEN)


def test_metrics_is_a_404_by_default(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_setting_comes_from_the_environment(seeds_dir, monkeypatch, make_client):
    monkeypatch.setenv("FEEDSVC_METRICS", "true")
    assert get_ok(make_client(), "/metrics").mimetype == "text/plain"


def test_prometheus_client_is_imported_only_with_metrics_on(seeds_dir):
    program = (
        "import sys; from feedsvc import create_app; "
        f"create_app({{'SEEDS_DIR': {str(seeds_dir)!r}, 'RELOAD_INTERVAL': 0}}); "
        "print('prometheus_client' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.strip() == "False"


@pytest.mark.parametrize(
    "path, kind",
    [
        ("/rss.xml", "feed"),
        ("/atom.xml", "feed"),
        ("/feed.json", "feed"),
        ("/topics/ai/rss.xml", "feed"),
        ("/page/2/atom.xml", "feed"),
        ("/topics/ai/page/3/feed.json", "feed"),
        ("/digest.html", "digest"),
        ("/topics/ai/digest.txt", "digest"),
        ("/", "page"),
        ("/topics/ai/", "page"),
        ("/all/page/2/", "page"),
        ("/feeds.opml", "opml"),
        ("/healthz", "healthz"),
        ("/metrics", "metrics"),
        ("/favicon.ico", "other"),
        ("/rss.xml.bak", "other"),
        ("/topics/ai/feed.json/x", "other"),
    ],
)
def test_route_kind(path, kind):
    assert route_kind(path) == kind


def test_requests_are_counted_by_kind_status_and_what_answered(metrics_client):
    client = metrics_client
    etag = get_ok(client, "/rss.xml").headers["ETag"]  # the app answers; the fast path keeps it
    get_ok(client, "/rss.xml")  # replayed
    assert client.get("/rss.xml", headers={"If-None-Match": etag}).status_code == 304  # replayed too
    assert client.get("/topics/no-such-topic/atom.xml").status_code == 404
    assert client.get("/no/such/thing").status_code == 404
    get_ok(client, "/")
    get_ok(client, "/feeds.opml")
    get_ok(client, "/healthz")
    get_ok(client, "/topics/ai/digest.txt")
    assert client.get(f"/rss.xml?include=all&token={TOKEN}").status_code == 200
    assert client.get("/rss.xml?include=all&token=wrong").status_code == 403
    get_ok(client, "/metrics")  # counted once its answer is made: in the next scrape
    samples = scrape(client)
    assert requests_by(samples, "kind", "status", "served_by") == {
        ("feed", "200", "app"): 2,
        ("feed", "200", "fastpath"): 1,
        ("feed", "304", "fastpath"): 1,
        ("feed", "404", "app"): 1,
        ("feed", "403", "app"): 1,
        ("other", "404", "app"): 1,
        ("page", "200", "app"): 1,
        ("opml", "200", "app"): 1,
        ("healthz", "200", "app"): 1,
        ("digest", "200", "app"): 1,
        ("metrics", "200", "app"): 1,
    }
    assert sum(requests_by(scrape(client), "kind").values()) == 13  # this scrape's request came in between


def test_304_from_the_app_when_the_fast_path_is_off(make_client):
    client = make_client(METRICS=True, FAST_PATH=False)
    etag = get_ok(client, "/atom.xml").headers["ETag"]
    assert client.get("/atom.xml", headers={"If-None-Match": etag}).status_code == 304
    assert requests_by(scrape(client), "kind", "status", "served_by") == {
        ("feed", "200", "app"): 1,
        ("feed", "304", "app"): 1,
    }


def test_render_cache_hits_and_misses(make_client):
    client = make_client(METRICS=True, FAST_PATH=False)  # every request reaches the render cache
    get_ok(client, "/topics/ai/rss.xml")
    get_ok(client, "/topics/ai/rss.xml")
    get_ok(client, "/topics/ai/rss.xml", headers={"Accept-Encoding": "gzip"})  # one body, both codings
    get_ok(client, "/topics/ai/atom.xml")
    samples = scrape(client)
    assert value(samples, "feedsvc_render_cache_lookups_total", result="miss") == 2
    assert value(samples, "feedsvc_render_cache_lookups_total", result="hit") == 2


def test_reloads_are_counted_and_timed(metrics_client, write_article):
    client = metrics_client
    store = client.application.extensions["feedsvc"]
    before = scrape(client)
    assert value(before, "feedsvc_reload_duration_seconds_count", outcome="changed") == 0
    write_article("new.md", webUrl="https://example.com/new", topics=["AI"])
    assert store.reload()
    assert not store.reload()
    samples = scrape(client)
    assert value(samples, "feedsvc_reload_duration_seconds_count", outcome="changed") == 1
    assert value(samples, "feedsvc_reload_duration_seconds_count", outcome="unchanged") == 1
    assert value(samples, "feedsvc_reload_duration_seconds_bucket", outcome="changed", le="+Inf") == 1
    assert value(samples, "feedsvc_reload_duration_seconds_sum", outcome="changed") > 0
    assert value(samples, "feedsvc_published_articles") == value(before, "feedsvc_published_articles") + 1
    last = value(samples, "feedsvc_last_reload_success_timestamp_seconds")
    assert value(before, "feedsvc_last_reload_success_timestamp_seconds") <= last <= time.time()


def test_a_failed_reload_is_counted_and_keeps_the_last_success_time(metrics_client, monkeypatch):
    client = metrics_client
    store = client.application.extensions["feedsvc"]
    last = value(scrape(client), "feedsvc_last_reload_success_timestamp_seconds")
    shutil.rmtree(store.seeds_dir)  # the folder itself is gone: the reload fails
    with pytest.raises(Exception):  # noqa: B017 - which error a missing folder raises is the store's business
        store.reload()
    samples = scrape(client)
    assert value(samples, "feedsvc_reload_duration_seconds_count", outcome="failed") == 1
    assert value(samples, "feedsvc_last_reload_success_timestamp_seconds") == last


def test_gauges_equal_the_public_figures_of_healthz(metrics_client, write_article):
    client = metrics_client
    store = client.application.extensions["feedsvc"]
    write_article("broken.md", "---\ntitle: [unclosed\n---\n")  # skipped
    write_article("extra.md", webUrl="https://example.com/extra", topics=["Robotics"])
    store.reload()
    health = get_ok(client, "/healthz").json
    assert len(health["skipped"]) == 1
    samples = scrape(client)
    assert value(samples, "feedsvc_published_articles") == health["published"]
    assert value(samples, "feedsvc_public_topics") == health["topics"]
    assert value(samples, "feedsvc_skipped_files") == len(health["skipped"])
    assert value(samples, "feedsvc_stale_files") == len(health["stale"])


def test_no_draft_figure_is_exposed(metrics_client, write_article):
    client = metrics_client
    store = client.application.extensions["feedsvc"]
    before = scrape(client)
    everything = get_ok(client, f"/healthz?token={TOKEN}").json
    assert everything["articles"] > everything["published"]  # the seeds hold drafts
    write_article("draft.md", webUrl="https://example.com/draft", published=False, topics=["Secret Merger"])
    assert store.reload()
    assert client.get(f"/topics/secret-merger/rss.xml?include=all&token={TOKEN}").status_code == 200
    text = get_ok(client, "/metrics").get_data(as_text=True)
    samples = parse(text)
    for name in ("feedsvc_published_articles", "feedsvc_public_topics"):
        assert value(samples, name) == value(before, name), name
    public = get_ok(client, "/healthz").json
    assert value(samples, "feedsvc_published_articles") == public["published"]
    assert "secret" not in text.lower() and "draft" not in text.lower() and TOKEN not in text


# --- a real `feedsvc serve` ------------------------------------------------------------------------


def worker_pids(log: str) -> list[int]:
    """The PID of every worker granian started, in order."""
    return [int(pid) for pid in re.findall(r"Spawning worker-\d+ with PID: (\d+)", log)]


def scrape_server(running: Server) -> dict[str, dict[tuple, float]]:
    """GET /metrics of a real server, parsed."""
    status, _, body = running.request("/metrics")
    assert status == 200
    return parse(body.decode())


@pytest.fixture
def metrics_server(seeds_dir, tmp_path):
    """`feedsvc serve --workers 2` with METRICS on; its temporary files under tmp_path/tmp."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with serving(seeds_dir, env={"FEEDSVC_METRICS": "true", "TMPDIR": str(temporary)}) as running:
        running.temporary = temporary
        yield running


@pytest.mark.slow
def test_every_workers_requests_are_summed(metrics_server):
    running = metrics_server
    requests = 60
    for _ in range(requests):  # one connection each: SO_REUSEPORT spreads them over both workers
        assert running.request("/topics/ai/atom.xml", headers={"Connection": "close"})[0] == 200
    samples = scrape_server(running)
    feeds = requests_by(samples, "kind", "served_by")
    assert feeds[("feed", "app")] + feeds[("feed", "fastpath")] == requests
    # Each worker's fast path keeps the response the first time it sees the URL: two workers, two.
    assert feeds[("feed", "app")] == 2, feeds
    health = parse_health(running)
    assert value(samples, "feedsvc_published_articles") == health["published"]
    assert value(samples, "feedsvc_public_topics") == health["topics"]
    assert value(samples, "feedsvc_reload_duration_seconds_count", outcome="unchanged") >= 2  # each catch-up


def parse_health(running: Server) -> dict:
    """/healthz of a real server, parsed."""
    status, _, body = running.request("/healthz")
    assert status == 200
    return json.loads(body)


@pytest.mark.slow
def test_metrics_folder_is_private_and_removed_and_dead_workers_are_marked(metrics_server):
    running = metrics_server
    folders = list(running.temporary.glob("feedsvc-metrics-*"))
    assert len(folders) == 1 and folders[0].stat().st_mode & 0o077 == 0
    folder = folders[0]
    for _ in range(10):
        running.request("/rss.xml", headers={"Connection": "close"})
    counted = sum(requests_by(scrape_server(running), "kind").values())
    killed = worker_pids(running.log_text())[0]
    # prometheus_client's files of gauges kept for live processes only ("live" modes) end in _PID.db.
    assert list(folder.glob(f"gauge_live*_{killed}.db"))
    os.kill(killed, signal.SIGKILL)  # granian starts another worker
    assert wait_until(lambda: not list(folder.glob(f"gauge_live*_{killed}.db")), seconds=10)
    assert wait_until(lambda: len(worker_pids(running.log_text())) == 3, seconds=20)
    samples = scrape_server(running)
    assert sum(requests_by(samples, "kind").values()) > counted >= 10  # the dead worker's counts stay
    assert value(samples, "feedsvc_published_articles") == parse_health(running)["published"]
    running.stop()
    assert not folder.exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_counts_under_load_match_what_wrk_counted(metrics_server):
    running = metrics_server
    connections = 8
    before = sum(requests_by(scrape_server(running), "kind").values())
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", "-d3s", running.url("/topics/ai/rss.xml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    done = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    text = running.request("/metrics")[2].decode()
    samples = parse(text)
    feeds = requests_by(samples, "kind", "status")[("feed", "200")]
    # wrk counts the answers it read; those in flight when it stopped were answered but not read.
    assert done <= feeds <= done + connections, (done, feeds)
    assert sum(requests_by(samples, "kind").values()) - before >= done
    excerpt = [line for line in text.splitlines() if line.startswith("feedsvc_") and "_bucket" not in line]
    print(f"\nwrk: {done} requests in 3 s; scrape:\n" + "\n".join(excerpt))


def test_serve_gives_the_workers_a_new_metrics_folder_and_removes_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "the-operators"))
    with metrics_folder(True) as folder:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == folder
        assert Path(folder).parent == tmp_path and not any(Path(folder).iterdir())
    assert not Path(folder).exists() and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "the-operators")
    with metrics_folder(False) as none:
        assert none is None


def test_serve_refuses_a_prometheus_client_imported_in_one_process_mode(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert "prometheus_client" in sys.modules  # this module imported its parser
    with pytest.raises(FeedsvcError, match="prometheus_client"), metrics_folder(True):
        pass
