"""Every public route, byte for byte, on the seeds and the corpus sample: a change to any feed's
bytes, headers or status shows here. `FEEDSVC_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
rewrites tests/data/golden/ after an intended change (review the diff before committing it)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import CORPUS, SEEDS

from feedsvc import create_app

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
# Files' mtimes make Last-Modified: fixed here, so the golden headers do not depend on the checkout.
MTIME = 1_600_000_000
HEADERS = ("Content-Type", "Content-Encoding", "ETag", "Last-Modified", "Cache-Control", "Vary", "Link", "Location")
FLAG_SETS = ("", "?include=all", "?limit=2", "?limit=2&page=2")
DOCUMENTS = ("rss.xml", "atom.xml", "feed.json", "digest.html", "digest.txt")


def routes(client) -> list[str]:
    """The index, the OPML, the stylesheet, every site-wide and per-topic page and document, with each set of flags."""
    index = client.get("/?include=all").get_data(as_text=True)
    slugs = sorted(set(re.findall(r"/topics/([^/]+)/rss\.xml", index)))
    paths = ["/", "/feeds.opml", "/healthz", "/style.css", "/all/"] + [f"/{name}" for name in DOCUMENTS]
    paths += [f"/topics/{slug}/{name}" for slug in slugs for name in ("", *DOCUMENTS)]
    # Page 2 of every document and topic page at its path (NAME -> page/2/NAME); "?limit=2&page=2" records its 301.
    pages = [
        re.sub(r"([^/]*)$", r"page/2/\1", path, count=1) + "?limit=2"
        for path in paths
        if path.endswith((*DOCUMENTS, "/"))
    ]
    return sorted({path + flags for path in paths for flags in FLAG_SETS} | set(pages) - {"/page/2/?limit=2"})


def answer(client, path: str, gzip: bool) -> dict:
    """Status, the headers that shape caching and meaning, and the body (text, or its length for gzip)."""
    response = client.get(path, headers={"Accept-Encoding": "gzip"} if gzip else {}, base_url="https://feeds.example/")
    headers = {name: response.headers[name] for name in HEADERS if name in response.headers}
    body = response.get_data()
    return {"status": response.status_code, "headers": headers,
            "body": f"{len(body)} gzip bytes" if gzip else body.decode("utf-8")}  # fmt: skip


@pytest.fixture(scope="module", params=["seeds", "corpus"])
def golden_client(request, tmp_path_factory):
    """A client over a copy of the seeds or the corpus sample with fixed mtimes."""
    folder = tmp_path_factory.mktemp("golden") / request.param
    shutil.copytree(SEEDS if request.param == "seeds" else CORPUS, folder)
    for path in folder.iterdir():
        os.utime(path, (MTIME, MTIME))
    os.utime(folder, (MTIME, MTIME))
    app = create_app({"TESTING": True, "SEEDS_DIR": str(folder), "RELOAD_INTERVAL": 0, "CACHE_DIR": ""})
    return request.param, app.test_client()


def test_every_route_answers_as_recorded(golden_client):
    name, client = golden_client
    got = {f"{path}{' (gzip)' if gzip else ''}": answer(client, path, gzip) for path in routes(client)
           for gzip in (False, True) if not gzip or "?" not in path}  # fmt: skip
    file = GOLDEN / f"{name}.json"
    if os.environ.get("FEEDSVC_UPDATE_GOLDEN"):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    recorded = json.loads(file.read_text(encoding="utf-8"))
    assert sorted(got) == sorted(recorded)
    for path in recorded:
        assert got[path] == recorded[path], path
