"""feedsvc.parsecache: a cache keyed by each file's path, size and mtime that round-trips every
state exactly, is written atomically and privately, and is ignored (rebuilt), never trusted and
never unpickled, when it is corrupt, foreign, signed with another key or outdated.

The cache is FORMAT 8: a JSON header line (`header`: format, seeds, limits, model), then chunks
of PAUSE_EVERY pickled (name, state) pairs, each after its length as 8 little-endian bytes, then
an HMAC-SHA256 of everything before it under the key file KEY_NAME in the cache folder (mode
0600, this user's). `split_cache` reads that layout on its own, so a format change fails the
layout test here first; the tampering tests flip bytes at positions it names. "Never unpickled"
is checked two ways: pickle.loads is counted, and a hostile pickle that would make a marker
folder is shown to make it when signed with the right key, and not when signed with another.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import pickle
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import types
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedsvc.content.fields import Limits, shared_provider
from feedsvc.content.model import Article, Image, Problem, Provider, Related
from feedsvc.runtime import parsecache
from feedsvc.runtime.loader import FileState, refresh
from feedsvc.runtime.parsecache import (
    FORMAT,
    KEY_BYTES,
    KEY_NAME,
    MODEL,
    PAUSE_EVERY,
    cache_file,
    header,
    load,
    save,
    signing_key,
)
from feedsvc.runtime.scan import Stamp, scan
from feedsvc.runtime.store import FeedStore
from feedsvc.web import create_app

LIMITS = Limits()
T0_NS = 1_600_000_000_123_456_789  # 2020-09-13, with nanoseconds a float would lose

# The documented layout, independent of parsecache's private names.
LENGTH = struct.Struct("<Q")  # before each chunk
SIGNATURE = 32  # HMAC-SHA256, last in the file

# What load logs when it ignores a cache: (level, words of the message).
BAD_SIGNATURE = ("WARNING", "its signature does not match")
OTHER_SETTINGS = ("INFO", "is for other settings")
UNUSABLE = ("WARNING", "is unusable")
KEY_NOT_OURS = ("WARNING", "is not this user's alone")

UTC = timezone.utc
INDIA = timezone(timedelta(hours=5, minutes=30))
NEWFOUNDLAND = timezone(-timedelta(hours=3, minutes=30))
KIRIBATI = timezone(timedelta(hours=14))
ODD_SECONDS = timezone(timedelta(hours=1, seconds=17))  # isoformat "+01:00:17"


# --- hand-made states with every field shape -----------------------------------------------------


def make_article(path: str, **overrides) -> Article:
    """A valid, published article of `path`, with overrides."""
    fields = {
        "path": path,
        "title": "A test article",
        "url": f"https://example.com/{path}",
        "published": datetime(2021, 2, 1, 10, 0, tzinfo=UTC),
        "excerpt": "What happened, in one line.",
        "provider": Provider("Example News", "example.com"),
        "topics": ("AI",),
        "images": (Image("https://example.com/a.jpg", 800, 600),),
        "is_published": True,
        "related": (),
    }
    fields.update(overrides)
    return Article(**fields)


def make_state(
    article: Article | None, problems=(), stale: bool = False, size: int = 1234, mtime_ns: int = T0_NS
) -> FileState:
    """A file state as the loader makes it."""
    return FileState(Stamp(size, mtime_ns), article, tuple(problems), stale)


def hand_made_states() -> dict[str, FileState]:
    """One state per field shape a cache must carry (fresh objects on every call)."""
    unicode_name = "ünïcødé/日本語 🎉.md"
    return {
        "full.md": make_state(
            make_article(
                "full.md",
                published=datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=INDIA),
                topics=("AI", "Computer Vision"),
                images=(
                    Image("https://example.com/sized.jpg", 800, 600),
                    Image("https://example.com/unsized.jpg"),
                    Image("https://example.com/wide.jpg", 640, None),
                    Image("https://example.com/tall.jpg", None, 480),
                ),
                related=(
                    Related(
                        "Everything",
                        "https://example.org/all",
                        datetime(2020, 1, 2, 3, 4, 5, tzinfo=NEWFOUNDLAND),
                        "An excerpt.",
                        Provider("Other", "example.org"),
                        Image("https://example.org/r.png", 120, 90),
                    ),
                    Related("Bare", "https://example.org/bare", datetime(2020, 1, 2, tzinfo=UTC)),
                    Related(
                        "Half",
                        "https://example.org/half",
                        datetime(2019, 12, 31, 23, 59, 59, 1, tzinfo=KIRIBATI),
                        "",
                        Provider("Jane Doe"),
                        Image("https://example.org/unsized.png"),
                    ),
                ),
            ),
            problems=[
                Problem("full.md", "topic 3 is not a name; it is ignored", "warning"),
                Problem("full.md", "image dropped: url missing", "warning", 9),
            ],
        ),
        "no-provider.md": make_state(
            make_article(
                "no-provider.md",
                provider=None,
                topics=(),
                images=(),
                is_published=False,
                excerpt="",
                published=datetime(2021, 2, 1, 10, 0, tzinfo=NEWFOUNDLAND),
            ),
        ),
        "provider-without-domain.md": make_state(
            make_article(
                "provider-without-domain.md",
                provider=Provider("Jane Doe", None),
                published=datetime(2022, 7, 1, 0, 0, tzinfo=KIRIBATI),
            ),
        ),
        "stale.md": make_state(
            make_article("stale.md", title="The last good version"),
            problems=[Problem("stale.md", "invalid YAML: expected ',' or ']'", "error", 7)],
            stale=True,
        ),
        "warned.md": make_state(
            make_article("warned.md"),
            problems=[Problem("warned.md", "published: « peut-être » is neither true nor false", "warning", 4)],
        ),
        "skipped.md": make_state(
            None, [Problem("skipped.md", "front matter is not closed", "error", 12)], size=0, mtime_ns=-1_234_567_890
        ),
        "skipped-without-line.md": make_state(
            None, [Problem("skipped-without-line.md", "not UTF-8 text (byte 3)", "error")]
        ),
        unicode_name: make_state(
            make_article(
                unicode_name,
                title='Ünïcødé — 日本語 🎉 "quoted" \\ back\tslash\u2028line',
                excerpt="👩\u200d💻 codes; 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑ ≠ ∞ \x7f",
                provider=Provider("Süddeutsche Zeitung", "süddeutsche.de"),
                topics=("Santé", "🤖 Robots"),
                published=datetime(2021, 2, 1, 10, 0, 0, 5, tzinfo=ODD_SECONDS),
            ),
            problems=[Problem(unicode_name, "titre coupé à 300 caractères ✂", "warning", 2)],
        ),
        "big-stamp.md": make_state(make_article("big-stamp.md"), size=10**12, mtime_ns=2**62 + 123),
    }


def dates_of(states: dict[str, FileState]) -> dict[str, list[tuple[str, timedelta | None]]]:
    """Every date of every state, as exactly as it can be told apart (text and offset)."""
    found = {}
    for name, state in states.items():
        if state.article is not None:
            moments = [state.article.published, *(r.published for r in state.article.related)]
            found[name] = [(m.isoformat(), m.utcoffset()) for m in moments]
    return found


def assert_round_trip(
    path: Path, seeds: Path, states: dict[str, FileState], limits: Limits = LIMITS
) -> dict[str, FileState]:
    """Save then load `states`: the same states come back, every date with its offset."""
    save(path, seeds, limits, states)
    loaded = load(path, seeds, limits)
    assert loaded == states
    assert dates_of(loaded) == dates_of(states)  # == on datetimes compares instants only
    return loaded


def parsed_states(folder: Path) -> dict[str, FileState]:
    """What parsing the folder from scratch gives."""
    return refresh(folder, {}, scan(folder))


def renamed(state: FileState, name: str, size: int | None = None) -> FileState:
    """The state of the same file under another name (the cache keeps an article's path as its key)."""
    return FileState(
        Stamp(state.stamp.size if size is None else size, state.stamp.mtime_ns),
        None if state.article is None else replace(state.article, path=name),
        tuple(replace(p, path=name) for p in state.problems),
        state.stale,
    )


def changed_states() -> dict[str, FileState]:
    """Other states than hand_made_states(), as many."""
    return {
        f"v2-{name}": renamed(state, f"v2-{name}", state.stamp.size + 1) for name, state in hand_made_states().items()
    }


def many_states(count: int) -> dict[str, FileState]:
    """`count` states, cycling through the hand-made shapes."""
    samples = list(hand_made_states().values())
    return {f"{n:04d}.md": renamed(samples[n % len(samples)], f"{n:04d}.md") for n in range(count)}


# --- reading a cache file and its key here, without parsecache -----------------------------------


def split_cache(raw: bytes) -> tuple[bytes, list[bytes], bytes]:
    """A cache's header line (with its newline), its chunks of pickles and its signature; fails
    unless the chunk lengths lead exactly to the signature."""
    end = raw.index(b"\n") + 1
    body_end = len(raw) - SIGNATURE
    chunks, at = [], end
    while at < body_end:
        (size,) = LENGTH.unpack_from(raw, at)
        chunks.append(raw[at + LENGTH.size : at + LENGTH.size + size])
        at += LENGTH.size + size
    assert at == body_end, "the chunk lengths do not add up to the start of the signature"
    return raw[:end], chunks, raw[body_end:]


def key_of(cache: Path) -> bytes:
    """The key file next to a cache, as bytes."""
    return (cache.parent / KEY_NAME).read_bytes()


def framed(seeds: Path, chunks: list[bytes], limits: Limits = LIMITS) -> bytes:
    """A cache body as save lays it out (the right header, each chunk after its length), unsigned."""
    return json.dumps(header(seeds, limits)).encode() + b"\n" + b"".join(LENGTH.pack(len(c)) + c for c in chunks)


def write_signed(path: Path, body: bytes, key: bytes) -> None:
    """Write `body` as a cache signed with `key`."""
    path.write_bytes(body + hmac.digest(key, body, "sha256"))


def replace_key(cache_dir: Path, key: bytes, mode: int = 0o600) -> Path:
    """Put `key` in the cache folder's key file, with `mode`."""
    path = cache_dir / KEY_NAME
    path.unlink(missing_ok=True)
    path.write_bytes(key)
    path.chmod(mode)
    return path


@contextmanager
def counting_unpickles():
    """pickle.loads, counted while in the block (parsecache unpickles with it)."""
    with mock.patch.object(pickle, "loads", wraps=pickle.loads) as loads:
        yield loads


@contextmanager
def module_settings(**settings):
    """parsecache's FORMAT, MODEL or PAUSE_EVERY replaced while in the block."""
    with mock.patch.multiple(parsecache, **settings):
        yield


class Hostile:
    """Unpickles as a call of os.mkdir(mark): a harmless stand-in for code a forged cache runs."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return os.mkdir, (str(self.mark),)


def write_hostile_cache(path: Path, seeds: Path, mark: Path, key: bytes) -> None:
    """A cache framed as save frames it, for the right folder and settings, whose one chunk
    creates `mark` when unpickled, signed with `key`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_signed(path, framed(seeds, [pickle.dumps([("a.md", Hostile(mark))])]), key)


def logged(caplog, path: Path) -> list[tuple[str, str]]:
    """What parsecache logged: (level, message), each message checked to name `path`."""
    records = [r for r in caplog.records if r.name == "feedsvc.runtime.parsecache"]
    assert all(str(path) in r.getMessage() for r in records)
    return [(r.levelname, r.getMessage()) for r in records]


def assert_ignored(
    path: Path, seeds: Path, caplog, reason: tuple[str, str], limits: Limits = LIMITS, names: Path | None = None
) -> None:
    """load gives {} (it must not raise) without unpickling anything, and logs `reason` once,
    naming the file (or `names`, the key file)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="feedsvc.runtime.parsecache"), counting_unpickles() as loads:
        assert load(path, seeds, limits) == {}
    assert loads.call_count == 0
    level, words = reason
    assert [(lvl, words in message) for lvl, message in logged(caplog, names or path)] == [(level, True)]


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    """The seeds folder the hand-made states claim to come from."""
    folder = tmp_path / "articles"
    folder.mkdir()
    return folder


@pytest.fixture
def cache_path(tmp_path: Path, articles_dir: Path) -> Path:
    """Where the cache of `articles_dir` goes (its folder not made yet)."""
    return cache_file(tmp_path / "parse-cache", articles_dir)


# --- round trip ----------------------------------------------------------------------------------


def test_hand_made_states_of_every_shape_round_trip_exactly(cache_path, articles_dir):
    states = hand_made_states()
    loaded = assert_round_trip(cache_path, articles_dir, states)
    assert loaded["skipped.md"].article is None and loaded["stale.md"].stale
    assert all(type(s.stamp) is Stamp for s in loaded.values())


def test_decoded_dates_keep_their_offsets_and_are_time_zone_aware(cache_path, articles_dir):
    loaded = assert_round_trip(cache_path, articles_dir, hand_made_states())
    full = loaded["full.md"].article
    assert full.published.isoformat() == "2021-03-04T05:06:07.891011+05:30"
    assert full.related[0].published.utcoffset() == -timedelta(hours=3, minutes=30)
    assert loaded["ünïcødé/日本語 🎉.md"].article.published.utcoffset() == timedelta(hours=1, seconds=17)
    assert all(offset is not None for dates in dates_of(loaded).values() for _, offset in dates)


def test_seeds_round_trip(cache_path, seeds_dir):
    states = parsed_states(seeds_dir)
    assert len(states) == 5 and all(s.article is not None for s in states.values())
    assert any(s.article.related for s in states.values())
    assert_round_trip(cache_file(cache_path.parent, seeds_dir), seeds_dir, states)


def test_corpus_sample_round_trips(cache_path, corpus_dir):
    states = parsed_states(corpus_dir)
    assert len(states) == 40
    assert_round_trip(cache_file(cache_path.parent, corpus_dir), corpus_dir, states)


def test_seeds_with_broken_and_warned_files_round_trip(cache_path, seeds_dir, write_article):
    write_article("broken.md", "---\ntitle: [unclosed\n---\n")
    write_article("warned.md", published="perhaps", topics=["AI", 3])
    write_article("sub/nested.md", webUrl="https://example.com/nested")
    states = parsed_states(seeds_dir)
    assert states["broken.md"].article is None and states["broken.md"].problems[0].line is not None
    assert states["warned.md"].article is not None and states["warned.md"].problems[0].severity == "warning"
    assert_round_trip(cache_file(cache_path.parent, seeds_dir), seeds_dir, states)


def test_an_empty_folder_round_trips_as_a_header_and_a_signature(cache_path, articles_dir):
    save(cache_path, articles_dir, LIMITS, {})
    assert load(cache_path, articles_dir, LIMITS) == {}
    line, chunks, _ = split_cache(cache_path.read_bytes())
    assert json.loads(line) == header(articles_dir, LIMITS) and chunks == []


def test_equal_providers_load_as_one_shared_object(cache_path, articles_dir):
    def news() -> Provider:
        return Provider("Example News", "example.com")  # a new, equal object each time

    link = Related("Link", "https://example.org/l", datetime(2021, 1, 1, tzinfo=UTC), provider=news())
    states = {
        f"{n}.md": make_state(make_article(f"{n}.md", provider=news(), related=(replace(link, provider=news()),)))
        for n in range(4)
    }
    states["other.md"] = make_state(make_article("other.md", provider=Provider("Example News", None)))
    with module_settings(PAUSE_EVERY=2):  # shared across chunks too, not only within one pickle
        save(cache_path, articles_dir, LIMITS, states)
    loaded = load(cache_path, articles_dir, LIMITS)
    assert loaded == states
    shared = {id(s.article.provider) for n, s in loaded.items() if n != "other.md"}
    shared |= {id(r.provider) for n, s in loaded.items() if n != "other.md" for r in s.article.related}
    assert shared == {id(shared_provider("Example News", "example.com"))}  # the parser's own object
    assert loaded["other.md"].article.provider is shared_provider("Example News", None)


def test_a_problem_of_a_file_whose_name_is_not_utf8_is_saved(cache_path, articles_dir):
    name = "b\udcff.md"  # os.scandir's name for the bytes b"b\xff.md"
    states = {name: make_state(None, [Problem(name, "front matter is not closed", "error", 1)])}
    assert_round_trip(cache_path, articles_dir, states)


def test_the_same_seeds_folder_through_a_symlink_uses_the_cache(cache_path, articles_dir, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(articles_dir, target_is_directory=True)
    states = hand_made_states()
    save(cache_file(cache_path.parent, link), link, LIMITS, states)
    assert load(cache_file(cache_path.parent, articles_dir), articles_dir, LIMITS) == states


# --- the layout ----------------------------------------------------------------------------------


def test_cache_is_a_header_line_length_framed_pickles_and_a_signature(cache_path, articles_dir):
    states = hand_made_states()
    with module_settings(PAUSE_EVERY=4):
        save(cache_path, articles_dir, LIMITS, states)
    raw = cache_path.read_bytes()
    line, chunks, signature = split_cache(raw)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == header(articles_dir, LIMITS)
    assert signature == hmac.digest(key_of(cache_path), raw[:-SIGNATURE], "sha256")
    pairs = [pickle.loads(chunk) for chunk in chunks]  # this test's own cache: safe to unpickle
    assert [len(chunk) for chunk in pairs] == [4, 4, 1]  # len(states) == 9
    assert dict(pair for chunk in pairs for pair in chunk) == states
    assert [name for chunk in pairs for name, _ in chunk] == list(states)  # in order


def test_header_names_the_format_folder_limits_and_every_pickled_class_field(articles_dir):
    written = header(articles_dir, Limits(title_chars=20))
    assert written == json.loads(json.dumps(written))  # survives its JSON line unchanged
    assert written["format"] == FORMAT == 8
    assert written["seeds"] == str(articles_dir.resolve())
    assert written["limits"] == {
        "file_bytes": LIMITS.file_bytes,
        "title_chars": 20,
        "excerpt_chars": LIMITS.excerpt_chars,
    }
    classes = (FileState, Article, Related, Image, Provider, Problem)
    assert written["model"] == {cls.__name__: [f.name for f in fields(cls)] for cls in classes} | {
        "Stamp": ["size", "mtime_ns"]
    }


@pytest.mark.parametrize("count", [0, 1, PAUSE_EVERY - 1, PAUSE_EVERY, PAUSE_EVERY + 1, 2 * PAUSE_EVERY + 7])
def test_one_chunk_per_pause_every_states(cache_path, articles_dir, count):
    save(cache_path, articles_dir, LIMITS, many_states(count))
    _, chunks, _ = split_cache(cache_path.read_bytes())
    sizes = [len(pickle.loads(chunk)) for chunk in chunks]
    assert sizes == [PAUSE_EVERY] * (count // PAUSE_EVERY) + ([count % PAUSE_EVERY] if count % PAUSE_EVERY else [])


def test_saving_the_same_states_again_writes_the_same_bytes(cache_path, articles_dir):
    states = hand_made_states()
    save(cache_path, articles_dir, LIMITS, states)
    first = cache_path.read_bytes()
    save(cache_path, articles_dir, LIMITS, states)
    assert cache_path.read_bytes() == first


def test_caches_in_two_folders_differ_only_in_their_signatures(tmp_path, articles_dir):
    states = hand_made_states()
    one, two = cache_file(tmp_path / "one", articles_dir), cache_file(tmp_path / "two", articles_dir)
    save(one, articles_dir, LIMITS, states)
    save(two, articles_dir, LIMITS, states)
    assert key_of(one) != key_of(two)  # each folder its own random key
    assert one.read_bytes()[:-SIGNATURE] == two.read_bytes()[:-SIGNATURE]
    assert one.read_bytes()[-SIGNATURE:] != two.read_bytes()[-SIGNATURE:]


# --- tampered, truncated, forged: ignored, never unpickled ----------------------------------------


def write_two_chunk_cache(cache_dir: Path, seeds: Path) -> Path:
    """A valid cache of the hand-made states in two chunks (5 and 4 states), checked to load."""
    path = cache_file(cache_dir, seeds)
    states = hand_made_states()
    with module_settings(PAUSE_EVERY=5):
        save(path, seeds, LIMITS, states)
    assert len(split_cache(path.read_bytes())[1]) == 2 and load(path, seeds, LIMITS) == states
    return path


@pytest.fixture
def base_cache(cache_path: Path, articles_dir: Path) -> Path:
    """A valid cache in two chunks, to be spoiled."""
    return write_two_chunk_cache(cache_path.parent, articles_dir)


def after(raw: bytes, text: bytes) -> int:
    """The position just after `text` in the header."""
    return raw.index(text) + len(text)


# Positions of the two-chunk cache, given (raw bytes, header line length, first chunk's length).
POSITIONS = {
    "header-first-byte": lambda raw, head, first: 0,
    "header-format-number": lambda raw, head, first: after(raw, b'"format": '),
    "header-seeds-path": lambda raw, head, first: after(raw, b'"seeds": "') + 1,
    "header-a-limit": lambda raw, head, first: after(raw, b'"title_chars": '),
    "header-newline": lambda raw, head, first: head - 1,
    "first-length-low-byte": lambda raw, head, first: head,
    "first-length-high-byte": lambda raw, head, first: head + LENGTH.size - 1,
    "first-pickle-first-byte": lambda raw, head, first: head + LENGTH.size,
    "first-pickle-middle": lambda raw, head, first: head + LENGTH.size + first // 2,
    "first-pickle-last-byte": lambda raw, head, first: head + LENGTH.size + first - 1,
    "second-length-low-byte": lambda raw, head, first: head + LENGTH.size + first,
    "second-pickle-middle": lambda raw, head, first: (head + 2 * LENGTH.size + first + len(raw) - SIGNATURE) // 2,
    "last-pickle-last-byte": lambda raw, head, first: len(raw) - SIGNATURE - 1,
    "signature-first-byte": lambda raw, head, first: len(raw) - SIGNATURE,
    "signature-last-byte": lambda raw, head, first: len(raw) - 1,
}


def flipped(raw: bytes, position: int, mask: int = 0x01) -> bytes:
    """`raw` with the byte at `position` XORed with `mask`."""
    return raw[:position] + bytes([raw[position] ^ mask]) + raw[position + 1 :]


@pytest.mark.parametrize("where", [pytest.param(f, id=name) for name, f in POSITIONS.items()])
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF], ids=["low-bit", "high-bit", "every-bit"])
def test_a_cache_with_one_byte_changed_is_ignored_unread(base_cache, articles_dir, caplog, where, mask):
    raw = base_cache.read_bytes()
    line, chunks, _ = split_cache(raw)
    position = where(raw, len(line), len(chunks[0]))
    base_cache.write_bytes(flipped(raw, position, mask))
    assert_ignored(base_cache, articles_dir, caplog, BAD_SIGNATURE)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> tuple[Path, Path, bytes]:
    """(cache folder, seeds folder, bytes of a valid two-chunk cache), for the property tests."""
    root = tmp_path_factory.mktemp("shared-cache")
    (root / "articles").mkdir()
    path = write_two_chunk_cache(root / "cache", root / "articles")
    return path.parent, root / "articles", path.read_bytes()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_one_byte_changed_anywhere_is_ignored_unread(shared_cache, data):
    cache_dir, seeds, raw = shared_cache
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    spoiled = cache_dir / "spoiled.bin"
    spoiled.write_bytes(flipped(raw, position, mask))
    with counting_unpickles() as loads:
        assert load(spoiled, seeds, LIMITS) == {}
    assert loads.call_count == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_any_bytes_but_a_signed_cache_are_ignored_unread(shared_cache, junk):
    cache_dir, seeds, _ = shared_cache
    spoiled = cache_dir / "junk.bin"
    spoiled.write_bytes(junk)
    with counting_unpickles() as loads:
        assert load(spoiled, seeds, LIMITS) == {}
    assert loads.call_count == 0


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: raw[:1], id="one-byte"),
        pytest.param(lambda raw: raw[-SIGNATURE + 1 :], id="shorter-than-a-signature"),
        pytest.param(lambda raw: raw[-SIGNATURE:], id="only-the-signature"),
        pytest.param(lambda raw: raw[:-SIGNATURE], id="signature-missing"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated-in-half"),
        pytest.param(lambda raw: raw[:-1], id="last-byte-missing"),
        pytest.param(lambda raw: raw[1:], id="first-byte-missing"),
        pytest.param(lambda raw: raw + b"\0", id="a-byte-appended"),
        pytest.param(lambda raw: raw + raw[-SIGNATURE:], id="signature-twice"),
        pytest.param(lambda raw: raw[:-SIGNATURE] * 2 + raw[-SIGNATURE:], id="body-twice"),
        pytest.param(lambda raw: b"\xff\xfe\x00garbage\x80" * 10, id="garbage"),
        pytest.param(lambda raw: json.dumps({"format": 3, "files": {}}).encode(), id="a-format-3-json-cache"),
    ],
)
def test_a_truncated_or_garbled_cache_is_ignored_unread(base_cache, articles_dir, caplog, spoil):
    base_cache.write_bytes(spoil(base_cache.read_bytes()))
    assert_ignored(base_cache, articles_dir, caplog, BAD_SIGNATURE)


def test_missing_cache_gives_nothing_and_says_nothing(cache_path, articles_dir, caplog):
    assert not cache_path.exists()
    with caplog.at_level(logging.DEBUG, logger="feedsvc.runtime.parsecache"):
        assert load(cache_path, articles_dir, LIMITS) == {}
    assert logged(caplog, cache_path) == []


def test_a_folder_in_place_of_the_cache_is_ignored(cache_path, articles_dir, caplog):
    cache_path.mkdir(parents=True)
    assert_ignored(cache_path, articles_dir, caplog, UNUSABLE)


def test_a_hostile_pickle_runs_when_signed_with_this_users_key(base_cache, articles_dir, tmp_path):
    # The control for the next tests: this payload really runs code once unpickled.
    mark = tmp_path / "mark"
    write_hostile_cache(base_cache, articles_dir, mark, key_of(base_cache))
    load(base_cache, articles_dir, LIMITS)
    assert mark.is_dir()


def test_a_hostile_pickle_signed_with_another_key_is_never_unpickled(base_cache, articles_dir, tmp_path, caplog):
    mark = tmp_path / "mark"
    write_hostile_cache(base_cache, articles_dir, mark, os.urandom(KEY_BYTES))
    assert_ignored(base_cache, articles_dir, caplog, BAD_SIGNATURE)
    assert not mark.exists()


def test_a_hostile_pickle_without_a_key_file_is_never_unpickled(base_cache, articles_dir, tmp_path):
    mark = tmp_path / "mark"
    key = key_of(base_cache)
    (base_cache.parent / KEY_NAME).unlink()
    write_hostile_cache(base_cache, articles_dir, mark, key)  # even signed with the key that was there
    with counting_unpickles() as loads:
        assert load(base_cache, articles_dir, LIMITS) == {}
    assert loads.call_count == 0 and not mark.exists()
    assert not (base_cache.parent / KEY_NAME).exists()  # load never makes a key


def test_a_cache_signed_under_a_replaced_key_is_ignored(base_cache, articles_dir, caplog):
    replace_key(base_cache.parent, os.urandom(KEY_BYTES))
    assert_ignored(base_cache, articles_dir, caplog, BAD_SIGNATURE)


def test_a_cache_copied_from_another_users_cache_folder_is_ignored(base_cache, articles_dir, tmp_path, caplog):
    theirs = cache_file(tmp_path / "their-cache", articles_dir)
    save(theirs, articles_dir, LIMITS, changed_states())  # the same folder and settings, their key
    shutil.copyfile(theirs, base_cache)
    assert_ignored(base_cache, articles_dir, caplog, BAD_SIGNATURE)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda seeds: b'{"format": 4}', id="no-newline"),
        pytest.param(lambda seeds: b"not json\n", id="header-not-json"),
        pytest.param(lambda seeds: framed(seeds, []) + b"\x01\x02", id="length-cut-short"),
        pytest.param(lambda seeds: framed(seeds, [b"garbage"]), id="chunk-not-a-pickle"),
        pytest.param(lambda seeds: framed(seeds, [pickle.dumps([])])[:-2], id="length-beyond-the-end"),
        pytest.param(lambda seeds: framed(seeds, [pickle.dumps(42)]), id="chunk-a-number"),
        pytest.param(lambda seeds: framed(seeds, [pickle.dumps([1, 2])]), id="chunk-not-pairs"),
        pytest.param(lambda seeds: framed(seeds, [b"cfeedsvc.model\nNoSuchClass\n."]), id="chunk-a-missing-class"),
        pytest.param(lambda seeds: framed(seeds, [b"cno_such_module\nThing\n."]), id="chunk-a-missing-module"),
    ],
)
def test_a_malformed_cache_signed_with_this_users_key_is_ignored_not_raised(base_cache, articles_dir, caplog, body):
    # Only this user's key can sign these: save never writes them, but load must not fail on them.
    write_signed(base_cache, body(articles_dir), key_of(base_cache))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="feedsvc.runtime.parsecache"):
        assert load(base_cache, articles_dir, LIMITS) == {}
    assert [(level, UNUSABLE[1] in message) for level, message in logged(caplog, base_cache)] == [("WARNING", True)]


# --- written for other settings: ignored, though signed ------------------------------------------


def test_cache_for_another_seeds_folder_is_ignored(base_cache, articles_dir, tmp_path, caplog):
    other = tmp_path / "other"
    other.mkdir()
    assert_ignored(base_cache, other, caplog, OTHER_SETTINGS)


@pytest.mark.parametrize(
    "limits",
    [Limits(file_bytes=999_999), Limits(title_chars=200), Limits(excerpt_chars=2_000)],
    ids=["MAX_FILE_BYTES", "MAX_TITLE_CHARS", "MAX_EXCERPT_CHARS"],
)
def test_cache_for_other_limits_is_ignored(base_cache, articles_dir, caplog, limits):
    assert_ignored(base_cache, articles_dir, caplog, OTHER_SETTINGS, limits)


def other_model(change) -> dict[str, list[str]]:
    """MODEL, copied, with `change` applied to the copy."""
    model = {name: list(names) for name, names in MODEL.items()}
    change(model)
    return model


@pytest.mark.parametrize(
    "written_with",
    [
        pytest.param({"FORMAT": FORMAT - 1}, id="older-format"),
        pytest.param({"FORMAT": FORMAT + 1}, id="newer-format"),
        pytest.param({"MODEL": other_model(lambda m: m["Article"].append("summary"))}, id="article-field-added"),
        pytest.param({"MODEL": other_model(lambda m: m["Image"].remove("height"))}, id="image-field-removed"),
        pytest.param({"MODEL": other_model(lambda m: m["Stamp"].reverse())}, id="stamp-fields-reordered"),
        pytest.param({"MODEL": other_model(lambda m: m.pop("Related"))}, id="a-class-missing"),
        pytest.param({"MODEL": other_model(lambda m: m.update(Author=["name"]))}, id="a-class-added"),
    ],
)
def test_cache_written_by_another_format_or_model_is_ignored_though_signed(
    cache_path, articles_dir, caplog, written_with
):
    with module_settings(**written_with):
        save(cache_path, articles_dir, LIMITS, hand_made_states())
    assert split_cache(cache_path.read_bytes())[2] == hmac.digest(
        key_of(cache_path), cache_path.read_bytes()[:-SIGNATURE], "sha256"
    )
    assert_ignored(cache_path, articles_dir, caplog, OTHER_SETTINGS)


# --- the key -------------------------------------------------------------------------------------


def test_save_makes_a_private_random_key_in_a_private_folder(tmp_path, articles_dir):
    folder = tmp_path / "new" / "cache"
    save(cache_file(folder, articles_dir), articles_dir, LIMITS, {})
    key = folder / KEY_NAME
    assert len(key.read_bytes()) == KEY_BYTES == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert signing_key(folder) == key.read_bytes()


def test_the_key_is_kept_across_saves(cache_path, articles_dir):
    save(cache_path, articles_dir, LIMITS, {})
    first = key_of(cache_path)
    save(cache_path, articles_dir, LIMITS, hand_made_states())
    assert key_of(cache_path) == first


def test_without_a_key_file_load_gives_nothing_and_save_makes_a_new_one(base_cache, articles_dir):
    old = key_of(base_cache)
    (base_cache.parent / KEY_NAME).unlink()
    assert signing_key(base_cache.parent) is None
    assert load(base_cache, articles_dir, LIMITS) == {}
    assert not (base_cache.parent / KEY_NAME).exists()
    states = changed_states()
    save(base_cache, articles_dir, LIMITS, states)
    assert key_of(base_cache) != old
    assert load(base_cache, articles_dir, LIMITS) == states


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids=oct)
def test_a_key_only_its_owner_can_read_is_used(base_cache, articles_dir, mode):
    (base_cache.parent / KEY_NAME).chmod(mode)
    assert signing_key(base_cache.parent) == key_of(base_cache)
    assert load(base_cache, articles_dir, LIMITS) == hand_made_states()


def assert_key_refused(cache: Path, seeds: Path, caplog) -> None:
    """With the key file as it is: load ignores the valid cache, and save writes nothing."""
    key = cache.parent / KEY_NAME
    before, key_before = cache.read_bytes(), (key.read_bytes(), stat.S_IMODE(key.stat().st_mode))
    assert_ignored(cache, seeds, caplog, KEY_NOT_OURS, names=key)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="feedsvc.runtime.parsecache"):
        save(cache, seeds, LIMITS, changed_states())
    assert [(level, KEY_NOT_OURS[1] in message) for level, message in logged(caplog, key)] == [("WARNING", True)]
    assert cache.read_bytes() == before
    assert (key.read_bytes(), stat.S_IMODE(key.stat().st_mode)) == key_before  # not repaired behind the user's back
    assert sorted(p.name for p in cache.parent.iterdir()) == sorted([cache.name, KEY_NAME])  # no temporary file
    cache.unlink()
    save(cache, seeds, LIMITS, changed_states())
    assert not cache.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o602, 0o606, 0o666], ids=oct)
def test_a_key_others_can_read_or_write_is_not_used(base_cache, articles_dir, caplog, mode):
    (base_cache.parent / KEY_NAME).chmod(mode)
    assert_key_refused(base_cache, articles_dir, caplog)


@pytest.mark.parametrize("size", [0, 1, KEY_BYTES - 1, KEY_BYTES + 1, 2 * KEY_BYTES])
def test_a_key_of_the_wrong_size_is_not_used(base_cache, articles_dir, caplog, size):
    # A longer file starts with the key the cache was signed with: it still must not be used.
    replace_key(base_cache.parent, (key_of(base_cache) * 2)[:size])
    assert_key_refused(base_cache, articles_dir, caplog)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_key_another_user_owns_is_not_used(base_cache, articles_dir, caplog):
    os.chown(base_cache.parent / KEY_NAME, 65534, 65534)  # nobody
    assert_key_refused(base_cache, articles_dir, caplog)


KEY_CANNOT_BE_USED = ("WARNING", "cannot be used")


def key_as_link(key: Path, tmp_path: Path) -> None:
    """The key moved away, a symbolic link to it in its place."""
    elsewhere = tmp_path / "elsewhere-key"
    key.replace(elsewhere)
    key.symlink_to(elsewhere)


@pytest.mark.parametrize(
    "plant, reason",
    [
        pytest.param(key_as_link, KEY_CANNOT_BE_USED, id="symlink-to-the-key"),
        pytest.param(lambda key, tmp: (key.unlink(), key.symlink_to(tmp / "gone")), KEY_CANNOT_BE_USED, id="dangling-symlink"),
        pytest.param(lambda key, tmp: (key.unlink(), os.mkfifo(key)), KEY_NOT_OURS, id="fifo"),  # must not hang
        pytest.param(lambda key, tmp: (key.unlink(), key.mkdir()), KEY_NOT_OURS, id="folder"),
    ],
)  # fmt: skip
def test_a_key_that_is_not_a_regular_file_is_not_used_and_nothing_raises(base_cache, articles_dir, tmp_path, caplog,
                                                                         plant, reason):  # fmt: skip
    key = base_cache.parent / KEY_NAME
    plant(key, tmp_path)
    before = base_cache.read_bytes()
    assert_ignored(base_cache, articles_dir, caplog, reason, names=key)
    save(base_cache, articles_dir, LIMITS, changed_states())  # refuses too, without raising
    assert base_cache.read_bytes() == before


def test_a_key_made_while_another_process_made_one_is_theirs(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    theirs = os.urandom(KEY_BYTES)
    path = replace_key(folder, theirs)
    parsecache._create_key(path)  # lost the race: their key appeared after the check for one
    assert path.read_bytes() == theirs and signing_key(folder) == theirs
    assert [p.name for p in folder.iterdir()] == [KEY_NAME]  # its own key, a temporary file, is gone


def test_threads_racing_to_make_the_key_all_get_the_same_one(tmp_path):
    folder, count = tmp_path / "cache", 8
    start, keys = threading.Barrier(count), []

    def make() -> None:
        start.wait()
        keys.append(signing_key(folder, create=True))

    threads = [threading.Thread(target=make) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == count and set(keys) == {(folder / KEY_NAME).read_bytes()}
    assert [p.name for p in folder.iterdir()] == [KEY_NAME]


# --- the JSON caches of FORMAT 3 and before ------------------------------------------------------


def write_legacy_cache(path: Path) -> Path:
    """A FORMAT 3 JSON cache next to where `path` goes."""
    legacy = path.with_suffix(".json")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps({"format": 3, "seeds": "x", "limits": {}, "files": {}}), encoding="utf-8")
    return legacy


def test_a_legacy_json_cache_is_never_read(cache_path, articles_dir, caplog):
    legacy = write_legacy_cache(cache_path)
    with caplog.at_level(logging.DEBUG, logger="feedsvc.runtime.parsecache"):
        assert load(cache_path, articles_dir, LIMITS) == {}
    assert logged(caplog, cache_path) == []
    assert legacy.exists()  # load writes nothing


def test_save_removes_the_legacy_json_cache_of_its_folder_only(cache_path, articles_dir, tmp_path):
    legacy = write_legacy_cache(cache_path)
    another_folders = write_legacy_cache(cache_file(cache_path.parent, tmp_path))
    save(cache_path, articles_dir, LIMITS, {})
    assert not legacy.exists() and another_folders.exists()
    assert cache_path.suffix == ".bin" and load(cache_path, articles_dir, LIMITS) == {}


# --- through FeedStore ---------------------------------------------------------------------------


@pytest.fixture
def mixed_seeds(seeds_dir: Path, write_article) -> Path:
    """The seeds, plus a skipped file, a file with warnings and one in a subfolder."""
    write_article("broken.md", "---\ntitle: [unclosed\n---\n")
    write_article("warned.md", published="perhaps", webUrl="https://example.com/warned")
    write_article("sub/nested.md", webUrl="https://example.com/nested")
    return seeds_dir


def started(seeds: Path, cache_dir: Path) -> FeedStore:
    """A store started over `seeds`, its cache write finished."""
    store = FeedStore(seeds, cache_dir=cache_dir)
    store.flush()
    return store


def spoil_truncated(path: Path) -> None:
    """Cut the cache in half."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def spoil_one_pickle_byte(path: Path) -> None:
    """Change one byte in the middle of the first pickle."""
    raw = path.read_bytes()
    line, chunks, _ = split_cache(raw)
    path.write_bytes(flipped(raw, len(line) + LENGTH.size + len(chunks[0]) // 2))


def spoil_garbage(path: Path) -> None:
    """Put bytes that are no cache in its place."""
    path.write_bytes(b"\x00\x01 this is no cache")


def spoil_replaced_key(path: Path) -> None:
    """Give the cache folder another key (the cache no longer matches its signature)."""
    replace_key(path.parent, os.urandom(KEY_BYTES))


def spoil_removed_key(path: Path) -> None:
    """Remove the cache folder's key."""
    (path.parent / KEY_NAME).unlink()


def spoil_older_format(path: Path) -> None:
    """Write the same states again, signed, as an older FORMAT."""
    seeds = Path(json.loads(path.read_bytes().split(b"\n", 1)[0])["seeds"])
    states = load(path, seeds, LIMITS)
    with module_settings(FORMAT=FORMAT - 1):
        save(path, seeds, LIMITS, states)


def spoil_other_model(path: Path) -> None:
    """Write the same states again, signed, for a model with another Article field."""
    seeds = Path(json.loads(path.read_bytes().split(b"\n", 1)[0])["seeds"])
    states = load(path, seeds, LIMITS)
    with module_settings(MODEL=other_model(lambda m: m["Article"].append("summary"))):
        save(path, seeds, LIMITS, states)


@pytest.mark.parametrize(
    "spoil",
    [
        spoil_truncated,
        spoil_one_pickle_byte,
        spoil_garbage,
        spoil_replaced_key,
        spoil_removed_key,
        spoil_older_format,
        spoil_other_model,
    ],
)
def test_store_with_a_corrupt_or_outdated_cache_parses_everything_and_rewrites_it(
    mixed_seeds, private_cache_dir, load_calls, spoil
):
    started(mixed_seeds, private_cache_dir)
    path = cache_file(private_cache_dir, mixed_seeds)
    spoil(path)
    expected = parsed_states(mixed_seeds)
    load_calls.clear()
    store = started(mixed_seeds, private_cache_dir)
    assert sorted(load_calls) == sorted(expected) and len(expected) == 8
    assert len(store.catalog.articles) == 7 and len(store.catalog.skipped) == 1
    assert load(path, mixed_seeds, LIMITS) == expected  # written valid again
    assert split_cache(path.read_bytes())[2] == hmac.digest(key_of(path), path.read_bytes()[:-SIGNATURE], "sha256")


def test_store_never_unpickles_a_forged_cache(seeds_dir, private_cache_dir, tmp_path, load_calls):
    mark = tmp_path / "mark"  # a folder: made even if the cache is read in a forked child
    started(seeds_dir, private_cache_dir)
    path = cache_file(private_cache_dir, seeds_dir)
    write_hostile_cache(path, seeds_dir, mark, os.urandom(KEY_BYTES))
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert not mark.exists()
    assert sorted(load_calls) == sorted(scan(seeds_dir).files) and len(store.catalog.articles) == 5
    assert load(path, seeds_dir, LIMITS) == parsed_states(seeds_dir)


def test_store_with_a_key_others_can_read_parses_everything_and_writes_no_cache(
    seeds_dir, private_cache_dir, load_calls
):
    first = started(seeds_dir, private_cache_dir)
    path = cache_file(private_cache_dir, seeds_dir)
    (private_cache_dir / KEY_NAME).chmod(0o644)
    written = path.read_bytes()
    for _ in range(2):
        load_calls.clear()
        store = started(seeds_dir, private_cache_dir)
        assert sorted(load_calls) == sorted(scan(seeds_dir).files)
        assert store.catalog.articles == first.catalog.articles
    assert path.read_bytes() == written
    assert stat.S_IMODE((private_cache_dir / KEY_NAME).stat().st_mode) == 0o644


def test_store_with_a_valid_cache_parses_nothing(mixed_seeds, private_cache_dir, load_calls):
    first = started(mixed_seeds, private_cache_dir)
    assert len(load_calls) == 8
    load_calls.clear()
    second = started(mixed_seeds, private_cache_dir)
    assert load_calls == []
    assert second.catalog.articles == first.catalog.articles
    assert second.catalog.problems == first.catalog.problems


def foreign_states(seeds_dir: Path) -> dict[str, FileState]:
    """This folder's names and stamps, with titles no parse of it gives."""
    return {
        name: replace(state, article=replace(state.article, title=f"Foreign {name}"))
        for name, state in parsed_states(seeds_dir).items()
    }


def test_store_takes_what_a_valid_cache_says(seeds_dir, private_cache_dir, load_calls):
    # A cache for this folder, these limits and these stamps is believed without a parse.
    found = scan(seeds_dir)
    states = foreign_states(seeds_dir)
    assert {name: s.stamp for name, s in states.items()} == found.files
    save(cache_file(private_cache_dir, seeds_dir), seeds_dir, LIMITS, states)
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert load_calls == []
    assert {a.title for a in store.catalog.articles} == {f"Foreign {name}" for name in found.files}


def test_store_ignores_another_folders_cache(seeds_dir, private_cache_dir, tmp_path, load_calls):
    other = tmp_path / "other-seeds"
    shutil.copytree(seeds_dir, other)
    other_cache = cache_file(private_cache_dir, other)
    save(other_cache, other, LIMITS, foreign_states(seeds_dir))  # right names, stamps and key; wrong folder
    other_cache.replace(cache_file(private_cache_dir, seeds_dir))
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert sorted(load_calls) == sorted(scan(seeds_dir).files)
    assert not any(a.title.startswith("Foreign") for a in store.catalog.articles)
    assert load(cache_file(private_cache_dir, seeds_dir), seeds_dir, LIMITS) == parsed_states(seeds_dir)


def test_store_ignores_a_cache_written_under_other_limits(seeds_dir, private_cache_dir, load_calls):
    save(cache_file(private_cache_dir, seeds_dir), seeds_dir, Limits(title_chars=20), foreign_states(seeds_dir))
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert sorted(load_calls) == sorted(scan(seeds_dir).files)
    assert not any(a.title.startswith("Foreign") for a in store.catalog.articles)


def test_file_touched_while_down_is_parsed_again_and_only_it(seeds_dir, private_cache_dir, load_calls):
    started(seeds_dir, private_cache_dir)
    target = sorted(seeds_dir.iterdir())[1]
    before = target.stat()
    later = before.st_mtime_ns + 1_000_000_000
    os.utime(target, ns=(later, later))  # same size, same bytes: only the mtime moved
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert load_calls == [target.name]
    assert len(store.catalog.articles) == 5
    assert load(cache_file(private_cache_dir, seeds_dir), seeds_dir, LIMITS)[target.name].stamp == Stamp(
        before.st_size, later
    )


def test_file_resized_while_down_with_its_old_mtime_is_parsed_again_and_only_it(
    seeds_dir, private_cache_dir, load_calls
):
    started(seeds_dir, private_cache_dir)
    target = sorted(seeds_dir.iterdir())[3]
    before = target.stat()
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace('title: "', 'title: "Edited: ', 1), encoding="utf-8")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p or rsync -t would leave it
    assert target.stat().st_size != before.st_size and target.stat().st_mtime_ns == before.st_mtime_ns
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert load_calls == [target.name]
    assert {a.path: a.title for a in store.catalog.articles}[target.name].startswith("Edited: ")


def test_files_added_and_removed_while_down(seeds_dir, private_cache_dir, write_article, load_calls):
    started(seeds_dir, private_cache_dir)
    gone = min(seeds_dir.iterdir())
    gone.unlink()
    write_article("new.md", webUrl="https://example.com/new")
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert load_calls == ["new.md"]
    cached = load(cache_file(private_cache_dir, seeds_dir), seeds_dir, LIMITS)
    assert set(cached) == set(scan(seeds_dir).files) and gone.name not in cached
    assert len(store.catalog.articles) == 5


# --- written atomically and privately ------------------------------------------------------------


def test_save_leaves_only_the_cache_and_its_key_readable_by_their_owner(tmp_path, articles_dir):
    folder = tmp_path / "new" / "cache"
    path = cache_file(folder, articles_dir)
    save(path, articles_dir, LIMITS, hand_made_states())
    assert sorted(folder.iterdir()) == sorted([path, folder / KEY_NAME])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / KEY_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_save_over_a_readable_cache_makes_it_private(cache_path, articles_dir):
    save(cache_path, articles_dir, LIMITS, {})
    cache_path.chmod(0o644)
    save(cache_path, articles_dir, LIMITS, hand_made_states())
    assert stat.S_IMODE(cache_path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "error",
    [RuntimeError("pickler broke"), OSError(28, "No space left on device"), KeyboardInterrupt()],
    ids=["RuntimeError", "OSError", "KeyboardInterrupt"],
)
def test_save_that_fails_midway_keeps_the_old_cache_and_no_temp_file(cache_path, articles_dir, monkeypatch, error):
    old = hand_made_states()
    save(cache_path, articles_dir, LIMITS, old)
    before, key = cache_path.read_bytes(), key_of(cache_path)
    real, encoded = parsecache.encode_chunk, []

    def failing(items: list) -> bytes:
        encoded.append(items)
        if len(encoded) == 3:
            raise error
        return real(items)

    monkeypatch.setattr(parsecache, "encode_chunk", failing)
    monkeypatch.setattr(parsecache, "PAUSE_EVERY", 2)  # 9 states: 5 chunks, the third fails
    with pytest.raises(type(error)):
        save(cache_path, articles_dir, LIMITS, changed_states())
    assert len(encoded) == 3
    assert cache_path.read_bytes() == before and key_of(cache_path) == key
    assert sorted(cache_path.parent.iterdir()) == sorted([cache_path, cache_path.parent / KEY_NAME])
    assert load(cache_path, articles_dir, LIMITS) == old


def test_a_reader_during_a_save_sees_the_whole_old_cache(cache_path, articles_dir, monkeypatch):
    old = hand_made_states()
    save(cache_path, articles_dir, LIMITS, old)
    real, seen = parsecache.encode_chunk, []

    def reading(items: list) -> bytes:
        if len(seen) < 2:  # before the first chunk and midway: part of the new cache is in the temporary file
            seen.append(load(cache_path, articles_dir, LIMITS))
        return real(items)

    monkeypatch.setattr(parsecache, "encode_chunk", reading)
    monkeypatch.setattr(parsecache, "PAUSE_EVERY", 2)
    new = changed_states()
    save(cache_path, articles_dir, LIMITS, new)
    assert seen == [old, old]
    assert load(cache_path, articles_dir, LIMITS) == new


# --- where the cache lives -----------------------------------------------------------------------


def test_cache_file_is_stable_for_one_folder_however_it_is_named(tmp_path, articles_dir, monkeypatch):
    cache = tmp_path / "cache"
    link = tmp_path / "link"
    link.symlink_to(articles_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    path = cache_file(cache, articles_dir)
    assert path.parent == cache and path.name.startswith("parse-") and path.suffix == ".bin"
    assert cache_file(cache, articles_dir) == path
    assert cache_file(cache, Path("articles")) == path
    assert cache_file(cache, Path("articles/../articles/.")) == path
    assert cache_file(cache, link) == path


def test_cache_file_differs_between_folders(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b", tmp_path / "a" / "b", tmp_path / "A"]
    names = {cache_file(tmp_path / "cache", folder).name for folder in folders}
    assert len(names) == len(folders) and KEY_NAME not in names


# --- pauses --------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, PAUSE_EVERY - 1, PAUSE_EVERY, 2 * PAUSE_EVERY + 7])
def test_save_with_pauses_writes_the_same_cache_and_pauses_after_each_chunk(tmp_path, articles_dir, monkeypatch, count):
    states = many_states(count)
    plain, paused = cache_file(tmp_path / "plain", articles_dir), cache_file(tmp_path / "paused", articles_dir)
    sleeps: list[float] = []
    monkeypatch.setattr(parsecache, "time", types.SimpleNamespace(sleep=sleeps.append))
    save(plain, articles_dir, LIMITS, states)
    assert sleeps == []  # no pause asked, none taken
    save(paused, articles_dir, LIMITS, states, pause=0.25)
    assert sleeps == [0.25] * math.ceil(count / PAUSE_EVERY)
    # Each folder has its own key: the signatures differ, everything before them is the same.
    assert paused.read_bytes()[:-SIGNATURE] == plain.read_bytes()[:-SIGNATURE]
    assert load(paused, articles_dir, LIMITS) == states


# --- the app's cache folder, or none -------------------------------------------------------------


@pytest.fixture
def xdg_cache(tmp_path: Path, monkeypatch) -> Path:
    """The default cache folder, under a private XDG_CACHE_HOME; no FEEDSVC_CACHE_DIR. Puts back
    the SIGHUP handler create_app installs."""
    monkeypatch.delenv("FEEDSVC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    previous = signal.getsignal(signal.SIGHUP)
    yield tmp_path / "xdg" / "feedsvc"
    signal.signal(signal.SIGHUP, previous)


def app_store(seeds_dir: Path, **config) -> FeedStore:
    """The store of an app over the seeds, its cache write finished."""
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, **config})
    store = app.extensions["feedsvc"]
    store.flush()
    return store


def test_app_writes_its_cache_and_key_in_the_default_folder(seeds_dir, xdg_cache):
    store = app_store(seeds_dir)
    assert store.cache_path == cache_file(xdg_cache, seeds_dir)
    assert set(load(store.cache_path, seeds_dir, LIMITS)) == set(scan(seeds_dir).files)
    assert signing_key(xdg_cache) is not None


def test_app_with_cache_dir_env_writes_there(seeds_dir, xdg_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", str(tmp_path / "elsewhere"))
    store = app_store(seeds_dir)
    assert store.cache_path == cache_file(tmp_path / "elsewhere", seeds_dir) and store.cache_path.is_file()
    assert (tmp_path / "elsewhere" / KEY_NAME).is_file()
    assert not (tmp_path / "xdg").exists()


def test_app_with_empty_cache_dir_config_writes_no_cache(seeds_dir, xdg_cache, tmp_path):
    store = app_store(seeds_dir, CACHE_DIR="")
    assert store.cache_path is None
    assert len(store.catalog.articles) == 5
    assert not (tmp_path / "xdg").exists()


def test_app_with_empty_cache_dir_env_writes_no_cache(seeds_dir, xdg_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", "")
    store = app_store(seeds_dir)
    assert store.cache_path is None
    assert not (tmp_path / "xdg").exists()


def test_empty_cache_dir_config_overrides_the_env(seeds_dir, xdg_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", str(tmp_path / "elsewhere"))
    store = app_store(seeds_dir, CACHE_DIR="")
    assert store.cache_path is None
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "xdg").exists()


def test_app_without_a_cache_parses_every_file_at_each_start(seeds_dir, xdg_cache, load_calls):
    app_store(seeds_dir, CACHE_DIR="")
    app_store(seeds_dir, CACHE_DIR="")
    assert len(load_calls) == 10


def test_a_warm_start_parses_nothing_and_loads_no_yaml_parser(tmp_path, seeds_dir):
    code = (
        "import sys\n"
        "from feedsvc.runtime.store import FeedStore\n"
        "store = FeedStore(sys.argv[1], cache_dir=sys.argv[2])\n"
        "store.flush()\n"
        "print(len(store.catalog.articles), sorted({m.split('.')[0] for m in sys.modules} & {'yaml', 'yaml_rs'}))"
    )
    command = [sys.executable, "-c", code, str(seeds_dir), str(tmp_path / "cache")]
    cold = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert cold.returncode == 0 and cold.stdout.split()[1:] == ["['yaml',", "'yaml_rs']"], cold.stderr
    warm = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == f"{cold.stdout.split()[0]} []"
