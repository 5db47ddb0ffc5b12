#!/usr/bin/env python3
"""Generate a corpus of article files shaped like the project's seeds, deterministically.

    python bench/gen_corpus.py OUTDIR --count N --seed S [--topics K] [--published 0.4] [--ext .txt]

The same arguments give byte-identical files on any machine (stdlib only, no clock, no hash
randomisation): the load, soak and speed benchmarks share one corpus shape. Each file has the
seeds' front matter (category, title, excerpt, publishedDateTime, webUrl and its AMP twins,
provider, topics, images, related links, a `secured` blob), a unique webUrl, one or two of a
few topics, and `published: true` on about 40% of the articles (every topic gets at least one
published article, so every topic feed exists with the default include=published).

Also a library: `make_article`, `revise` (a new version of an article with the same identity:
webUrl, topics, published flag), `render` (fields -> file text) and `generate`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

TOPICS = ("AI", "Computer Vision", "Robotics", "Machine Learning", "Climate Tech", "Space")
PROVIDERS = (
    ("ABC7", "abc7.com"), ("KTLA", "ktla.com"), ("Gizmodo", "gizmodo.com"), ("IoT Tech News", "iottechnews.com"),
    ("MyNewsLA", "mynewsla.com"), ("Government Technology", "govtech.com"), ("Threatpost", "threatpost.com"),
    ("Biometric Update", "biometricupdate.com"), ("TechSpot", "techspot.com"), ("CBS News", "cbsnews.com"),
    ("Hot Hardware", "hothardware.com"), ("The Verge", "theverge.com"), ("Ars Technica", "arstechnica.com"),
    ("Süddeutsche Zeitung", "sueddeutsche.de"),
)  # fmt: skip
SUBJECTS = (
    "Police commission", "City council", "Startup", "Research lab", "Regulator", "Chipmaker", "University team",
    "Space agency", "Carmaker", "Hospital network", "Retail giant", "Open-source project", "Court",
)  # fmt: skip
VERBS = (
    "approves", "bans", "unveils", "tests", "questions", "funds", "delays", "expands", "rejects", "audits",
    "open-sources", "pauses", "doubles down on",
)  # fmt: skip
OBJECTS = (
    "facial recognition", "a new vision model", "warehouse robots", "self-driving shuttles", "a carbon-capture pilot",
    "satellite imagery tools", "a chatbot for caseworkers", "predictive maintenance", "drone deliveries",
    "an AI hiring screen", "a weather model", "medical imaging software", "a lunar lander",
)  # fmt: skip
CONTEXTS = (
    "after a year-long review", "despite privacy concerns", "in a landmark vote", "amid budget cuts",
    "following a data leak", "ahead of the election", "as critics call for oversight", "in a first for the region",
    "with a “strong oversight system”", "after officials’ objections", "for the second time this year",
)  # fmt: skip
START = datetime(2020, 1, 1, tzinfo=timezone.utc)
SPAN_MINUTES = 2 * 365 * 24 * 60


def slug_words(text: str) -> str:
    """A URL path segment from a title."""
    word = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in word.split("-") if part)[:80]


def headline(rng: random.Random) -> str:
    """A plausible headline."""
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CONTEXTS)}"


def sentence(rng: random.Random) -> str:
    """A plausible one- or two-sentence excerpt."""
    first = f"The {rng.choice(SUBJECTS).lower()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CONTEXTS)}."
    if rng.random() < 0.5:
        return first
    return first + f" Observers say it {rng.choice(VERBS)} {rng.choice(OBJECTS)} too."


def image(rng: random.Random, domain: str, tag: str) -> dict:
    """An image entry as the seeds have them."""
    width = rng.choice((640, 800, 939, 1200, 1280))
    return {
        "url": f"https://cdn.{domain}/images/{tag}.jpg",
        "width": width,
        "height": width * 9 // 16,
        "isCached": True,
    }


def related_links(rng: random.Random, index: int, revision: int, published: datetime) -> list[dict]:
    """0-3 related links with URLs of their own (never an article's URL)."""
    links = []
    for number in range(rng.choice((0, 1, 1, 2, 2, 3))):
        name, domain = rng.choice(PROVIDERS)
        title = headline(rng)
        when = published + timedelta(minutes=rng.randint(-3000, 3000))
        url = f"https://www.{domain}/story/{slug_words(title)}-{index}-{revision}-{number}.html"
        links.append({
            "title": title,
            "excerpt": sentence(rng),
            "publishedDateTime": when,
            "webUrl": url,
            "ampWebUrl": url + "?AMP",
            "type": "article",
            "provider": {"name": name, "domain": domain},
            "quality": rng.randint(30, 90),
            "images": [image(rng, domain, f"rel-{index}-{revision}-{number}")],
        })  # fmt: skip
    return links


def make_article(
    index: int, rng: random.Random, topics: tuple[str, ...] = TOPICS, published_share: float = 0.4
) -> dict:
    """The fields of article number `index`: a unique webUrl, one or two topics, ~40% published."""
    primary = topics[index % len(topics)]  # round robin: every topic gets articles
    chosen = [primary]
    if rng.random() < 0.5:
        other = rng.choice(topics)
        if other != primary:
            chosen.append(other)
    # The first article of each topic is published, so every topic feed exists by default.
    is_published = index < len(topics) or rng.random() < published_share
    name, domain = rng.choice(PROVIDERS)
    title = headline(rng)
    when = START + timedelta(minutes=rng.randrange(SPAN_MINUTES))
    url = f"https://{domain}/news/{when:%Y/%m}/{slug_words(title)}-{index}/"
    return {
        "category": "news",
        "title": title,
        "excerpt": sentence(rng),
        "publishedDateTime": when,
        "originalUrl": url,
        "webUrl": url,
        "ampWebUrl": url + "amp/",
        "cdnAmpWebUrl": f"https://{domain.replace('.', '-')}.cdn.ampproject.org/c/s/{url[8:]}amp/",
        "type": "article",
        "quality": rng.randint(30, 90),
        "heat": rng.choice((-1, 0, 5, 12)),
        "published": is_published,
        "provider": {"name": name, "domain": domain},
        "topics": chosen,
        "images": [image(rng, domain, f"art-{index}")],
        "related": related_links(rng, index, 0, when),
        "secured": secured_blob(rng),
        "_index": index,
        "_revision": 0,
    }


def revise(fields: dict, rng: random.Random) -> dict:
    """A new version of an article with the same identity (webUrl, topics, published flag):
    new title, excerpt, date and related links, so that its size changes too."""
    new = dict(fields)
    new["_revision"] = fields.get("_revision", 0) + 1
    new["title"] = headline(rng) + ("" if rng.random() < 0.5 else f" (update {new['_revision']})")
    new["excerpt"] = sentence(rng)
    new["publishedDateTime"] = fields["publishedDateTime"] + timedelta(minutes=rng.randint(1, 600))
    new["quality"] = rng.randint(30, 90)
    new["related"] = related_links(rng, fields.get("_index", 0), new["_revision"], new["publishedDateTime"])
    return new


def secured_blob(rng: random.Random) -> str:
    """An opaque blob like the seeds' `secured` field (never published)."""
    body = base64.b64encode(rng.randbytes(rng.randint(200, 480))).decode("ascii")
    return body + ";" + base64.b64encode(rng.randbytes(16)).decode("ascii")


def scalar(value) -> str:
    """A YAML scalar: datetimes bare (a YAML timestamp, as in the seeds), text double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def mapping_lines(data: dict, indent: str) -> list[str]:
    """Block-style YAML lines of a flat-or-nested mapping (values: scalars, dicts, lists of dicts)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.extend(mapping_lines(value, indent + "  "))
        elif isinstance(value, list):
            lines.append(f"{indent}{key}:")
            for item in value:
                if isinstance(item, dict):
                    first, *rest = mapping_lines(item, indent + "    ")
                    lines.append(f"{indent}  - {first.lstrip()}")
                    lines.extend(rest)
                else:
                    lines.append(f"{indent}  - {item}")
        else:
            lines.append(f"{indent}{key}: {scalar(value)}")
    return lines


def render(fields: dict) -> str:
    """The file text: front matter in the seeds' layout (blank lines between the groups)."""
    head = {k: v for k, v in fields.items() if not k.startswith("_")}
    lines = ["---"]
    for key, value in head.items():
        if key == "related" and not value:
            continue
        if key in ("provider", "topics", "images", "related", "secured"):
            lines.append("")
        lines.extend(mapping_lines({key: value}, ""))
    lines += ["---", ""]
    return "\n".join(lines) + "\n"


def file_name(index: int, rng: random.Random, ext: str = ".txt") -> str:
    """A seeds-like file name: a sequence number and 16 hex digits."""
    return f"{index:04d}_{rng.getrandbits(64):016x}{ext}"


def generate(
    outdir: Path,
    count: int,
    seed: int,
    topics: tuple[str, ...] = TOPICS,
    published_share: float = 0.4,
    ext: str = ".txt",
) -> list[tuple[str, dict]]:
    """Write `count` article files into `outdir` (created); return (file name, fields) pairs."""
    outdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    made = []
    for index in range(count):
        fields = make_article(index, rng, topics, published_share)
        name = file_name(index, rng, ext)
        (outdir / name).write_text(render(fields), encoding="utf-8")
        made.append((name, fields))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--count", type=int, default=200, help="number of articles (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--topics", type=int, default=len(TOPICS), help=f"how many topics, 1-{len(TOPICS)} (default all)"
    )
    parser.add_argument("--published", type=float, default=0.4, help="share of published articles (default 0.4)")
    parser.add_argument("--ext", default=".txt", help="file name extension (default .txt, like the seeds)")
    args = parser.parse_args(argv)
    if args.count < 0 or not 1 <= args.topics <= len(TOPICS):
        parser.error(f"--count must be >= 0 and --topics from 1 to {len(TOPICS)}")
    made = generate(args.outdir, args.count, args.seed, TOPICS[: args.topics], args.published, args.ext)
    published = sum(1 for _, fields in made if fields["published"])
    print(f"{len(made)} articles ({published} published) in {args.outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
