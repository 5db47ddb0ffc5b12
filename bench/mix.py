#!/usr/bin/env python3
"""Build the request mix that bench/mix.lua sends with wrk, from a running feedsvc.

    python bench/mix.py BASE_URL OUTFILE

Discovers the topics (from /feeds.opml and /feeds.opml?include=all), collects the current
ETags of a few feeds (plain and gzip) for If-None-Match revalidations, and writes one request
a line: `PATH<TAB>Header: value<TAB>...` followed by `<TAB>=STATUS`, the status it must get.
Every request is sent once first and must get that status, so a load run sends only requests
that should succeed: any 4xx/5xx under load is the server's fault, not the mix's.
Stdlib only.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("rss.xml", "atom.xml", "feed.json")
GZIP = ("Accept-Encoding", "gzip")
MAX_TOPICS = 12  # enough topics to spread the load; the mix stays a few hundred lines


@dataclass(frozen=True)
class Request:
    """One request of the mix and the status it should get."""

    path: str
    headers: tuple[tuple[str, str], ...] = ()
    expect: int = 200
    weight: int = 1

    def line(self) -> str:
        return "\t".join([self.path, *(f"{k}: {v}" for k, v in self.headers), f"={self.expect}"])


@dataclass
class Response:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def fetch(base_url: str, path: str, headers: tuple[tuple[str, str], ...] = (), timeout: float = 30) -> Response:
    """GET base_url+path; any status is returned, not raised."""
    request = urllib.request.Request(base_url.rstrip("/") + path, headers=dict(headers))
    try:
        with OPENER.open(request, timeout=timeout) as answer:
            return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def topic_slugs(base_url: str, include_all: bool) -> list[str]:
    """The topic slugs the OPML subscription list names."""
    answer = fetch(base_url, "/feeds.opml" + ("?include=all" if include_all else ""))
    if answer.status != 200:
        raise RuntimeError(f"/feeds.opml answered {answer.status}")
    slugs = re.findall(r'xmlUrl="[^"]*/topics/([^/"]+)/rss\.xml', answer.body.decode("utf-8"))
    return list(dict.fromkeys(slugs))


def build(base_url: str) -> list[Request]:
    """The mix: topic feeds in every format, with and without gzip, the all-topics feeds,
    previews (include=all), the index, OPML, /healthz, and If-None-Match revalidations."""
    published = topic_slugs(base_url, include_all=False)[:MAX_TOPICS]
    everything = topic_slugs(base_url, include_all=True)[:MAX_TOPICS]
    if not published:
        raise RuntimeError("the service has no published topic: nothing to load-test")
    mix: list[Request] = []
    for slug in published:
        for fmt in FORMATS:
            mix.append(Request(f"/topics/{slug}/{fmt}"))
            mix.append(Request(f"/topics/{slug}/{fmt}", (GZIP,)))
    for number, slug in enumerate(everything):
        fmt = FORMATS[number % len(FORMATS)]
        mix.append(Request(f"/topics/{slug}/{fmt}?include=all&limit=100", (GZIP,) if number % 2 else ()))
    for fmt in FORMATS:
        mix.append(Request(f"/{fmt}"))
        mix.append(Request(f"/{fmt}", (GZIP,)))
        mix.append(Request(f"/{fmt}?limit=10", (GZIP,)))
    mix += [Request("/"), Request("/", (GZIP,)), Request("/?include=all"), Request("/feeds.opml"), Request("/healthz")]
    # Revalidations: a reader polling with the ETag it has (weak comparison; gzip has its own tag).
    revalidate = [f"/topics/{slug}/{FORMATS[n % 3]}" for n, slug in enumerate(published)] + [
        f"/{fmt}" for fmt in FORMATS
    ]
    for path in revalidate:
        for coding in ((), (GZIP,)):
            etag = fetch(base_url, path, coding).headers.get("etag")
            if etag:
                mix.append(Request(path, coding + (("If-None-Match", etag),), expect=304))
    return mix


def verify(base_url: str, mix: list[Request]) -> list[str]:
    """Send each request once; the problems (wrong status) found."""
    problems = []
    for request in mix:
        answer = fetch(base_url, request.path, request.headers)
        if answer.status != request.expect:
            problems.append(f"{request.path} {dict(request.headers)}: {answer.status}, expected {request.expect}")
    return problems


def write(mix: list[Request], out: Path) -> None:
    """One line a request, repeated by weight."""
    out.write_text("".join((r.line() + "\n") * r.weight for r in mix), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        mix = build(args.base_url)
        problems = verify(args.base_url, mix)
    except (OSError, RuntimeError) as exc:
        print(f"mix: cannot build the request mix: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("mix: requests that do not get the status they should:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    write(mix, args.out)
    lines = sum(r.weight for r in mix)
    revalidations = sum(r.weight for r in mix if r.expect == 304)
    print(
        f"mix: {len(mix)} distinct requests, {lines} lines ({revalidations} If-None-Match revalidations) in {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
