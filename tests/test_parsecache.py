"""feedsvc.parsecache: a cache keyed by each file's path, size and mtime that round-trips every
state exactly, is written atomically and privately, and is ignored (rebuilt), never trusted, when
it is corrupt, foreign or outdated.

The cache is FORMAT 3 (FORMAT 2's layout; the URL rules changed): positional arrays. The mutation
tests name the positions below; the layout test checks those names against a real cache first,
so a format change fails loudly here instead of silently mutating the wrong field.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import types
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import feedsvc.loader
from feedsvc import create_app, parsecache
from feedsvc.fields import Limits
from feedsvc.loader import FileState, Stamp, refresh, scan
from feedsvc.model import Article, Image, Problem, Provider, Related
from feedsvc.parsecache import FORMAT, PAUSE_EVERY, cache_file, default_cache_dir, load, save
from feedsvc.store import FeedStore

LIMITS = Limits()
T0_NS = 1_600_000_000_123_456_789  # 2020-09-13, with nanoseconds a float would lose

# Positions in FORMAT 3's arrays.
SIZE, MTIME, ARTICLE, PROBLEMS, STALE = range(5)
TITLE, URL, PUBLISHED, EXCERPT, PROVIDER, TOPICS, IMAGES, IS_PUBLISHED, RELATED = range(9)
R_TITLE, R_URL, R_PUBLISHED, R_EXCERPT, R_PROVIDER, R_IMAGE = range(6)
P_PATH, P_MESSAGE, P_SEVERITY, P_LINE = range(4)
I_URL, I_WIDTH, I_HEIGHT = range(3)

UTC = timezone.utc
INDIA = timezone(timedelta(hours=5, minutes=30))
NEWFOUNDLAND = timezone(-timedelta(hours=3, minutes=30))
KIRIBATI = timezone(timedelta(hours=14))
ODD_SECONDS = timezone(timedelta(hours=1, seconds=17))  # isoformat "+01:00:17"


# --- hand-made states with every field shape -----------------------------------------------------


def make_article(path: str, **overrides) -> Article:
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
    save(path, seeds, limits, states)
    loaded = load(path, seeds, limits)
    assert loaded == states
    assert dates_of(loaded) == dates_of(states)  # == on datetimes compares instants only
    return loaded


def parsed_states(folder: Path) -> dict[str, FileState]:
    """What parsing the folder from scratch gives."""
    return refresh(folder, {}, scan(folder))


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    """The seeds folder the hand-made states claim to come from."""
    folder = tmp_path / "articles"
    folder.mkdir()
    return folder


@pytest.fixture
def cache_path(tmp_path: Path, articles_dir: Path) -> Path:
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


def test_an_empty_folder_round_trips(cache_path, articles_dir):
    save(cache_path, articles_dir, LIMITS, {})
    assert load(cache_path, articles_dir, LIMITS) == {}
    assert json.loads(cache_path.read_text(encoding="utf-8"))["files"] == {}


def test_equal_providers_decode_to_one_shared_object(cache_path, articles_dir):
    def news() -> Provider:
        return Provider("Example News", "example.com")  # a new, equal object each time

    link = Related("Link", "https://example.org/l", datetime(2021, 1, 1, tzinfo=UTC), provider=news())
    states = {
        f"{n}.md": make_state(make_article(f"{n}.md", provider=news(), related=(replace(link, provider=news()),)))
        for n in range(4)
    }
    states["other.md"] = make_state(make_article("other.md", provider=Provider("Example News", None)))
    save(cache_path, articles_dir, LIMITS, states)
    loaded = load(cache_path, articles_dir, LIMITS)
    assert loaded == states
    shared = {id(s.article.provider) for n, s in loaded.items() if n != "other.md"}
    shared |= {id(r.provider) for n, s in loaded.items() if n != "other.md" for r in s.article.related}
    assert len(shared) == 1
    assert loaded["other.md"].article.provider not in (None, loaded["0.md"].article.provider)


# --- the layout the mutation tests rely on -------------------------------------------------------


@pytest.fixture
def base_cache(cache_path: Path, articles_dir: Path) -> Path:
    """A valid cache of one full state ("full.md"), checked to load before it is spoiled."""
    states = {"full.md": hand_made_states()["full.md"]}
    save(cache_path, articles_dir, LIMITS, states)
    assert load(cache_path, articles_dir, LIMITS) == states
    return cache_path


def test_cache_layout_is_the_documented_positional_arrays(base_cache, articles_dir):
    data = json.loads(base_cache.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT == 3
    assert data["seeds"] == str(articles_dir.resolve())
    assert data["limits"] == {
        "file_bytes": LIMITS.file_bytes,
        "title_chars": LIMITS.title_chars,
        "excerpt_chars": LIMITS.excerpt_chars,
    }
    state = data["files"]["full.md"]
    assert (state[SIZE], state[MTIME], state[STALE]) == (1234, T0_NS, False)
    assert state[PROBLEMS][1] == ["full.md", "image dropped: url missing", "warning", 9]
    article = state[ARTICLE]
    assert len(article) == 9 and article[TITLE] == "A test article" and article[URL] == "https://example.com/full.md"
    assert (
        article[PUBLISHED] == "2021-03-04T05:06:07.891011+05:30" and article[EXCERPT] == "What happened, in one line."
    )
    assert article[PROVIDER] == ["Example News", "example.com"] and article[TOPICS] == ["AI", "Computer Vision"]
    assert article[IMAGES][0] == ["https://example.com/sized.jpg", 800, 600] and article[IS_PUBLISHED] is True
    related = article[RELATED][0]
    assert related[R_TITLE] == "Everything" and related[R_URL] == "https://example.org/all"
    assert related[R_PUBLISHED] == "2020-01-02T03:04:05-03:30" and related[R_EXCERPT] == "An excerpt."
    assert related[R_PROVIDER] == ["Other", "example.org"] and related[R_IMAGE] == [
        "https://example.org/r.png",
        120,
        90,
    ]
    assert article[RELATED][1][R_PROVIDER] is None and article[RELATED][1][R_IMAGE] is None


# --- ignored, never trusted, never raising -------------------------------------------------------


def assert_ignored(path: Path, seeds: Path, caplog, limits: Limits = LIMITS) -> None:
    """load gives {} (it must not raise) and says why, naming the file."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="feedsvc.parsecache"):
        assert load(path, seeds, limits) == {}
    assert any(r.name == "feedsvc.parsecache" and str(path) in r.getMessage() for r in caplog.records)


def rewrite(path: Path, change) -> None:
    """Decode the cache, let `change` alter the data in place, encode it again."""
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_missing_cache_gives_nothing(cache_path, articles_dir):
    assert not cache_path.exists()
    assert load(cache_path, articles_dir, LIMITS) == {}


def test_a_folder_in_place_of_the_cache_is_ignored(cache_path, articles_dir, caplog):
    cache_path.mkdir(parents=True)
    assert_ignored(cache_path, articles_dir, caplog)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated-in-half"),
        pytest.param(lambda raw: raw[:-1], id="last-brace-missing"),
        pytest.param(lambda raw: b"not json at all", id="not-json"),
        pytest.param(lambda raw: b"\xff\xfe\x00garbage\x80", id="not-utf8"),
        pytest.param(lambda raw: b"null", id="json-null"),
        pytest.param(lambda raw: b'"text"', id="json-string"),
        pytest.param(lambda raw: b"42", id="json-number"),
        pytest.param(lambda raw: json.dumps([json.loads(raw)]).encode(), id="json-list"),
    ],
)
def test_unreadable_cache_is_ignored(base_cache, articles_dir, caplog, spoil):
    base_cache.write_bytes(spoil(base_cache.read_bytes()))
    assert_ignored(base_cache, articles_dir, caplog)


def on_state(change):
    """A rewrite that alters the one state's array."""
    return lambda data: change(data["files"]["full.md"])


def on_article(change):
    return on_state(lambda state: change(state[ARTICLE]))


def set_at(*steps_and_value):
    """Set a value at nested positions of the state: set_at(ARTICLE, TITLE, 5)."""
    *steps, last, value = steps_and_value

    def change(state):
        target = state
        for step in steps:
            target = target[step]
        target[last] = value

    return on_state(change)


# Each makes the cache wrong in one way.
WRONG_SHAPES = [
    pytest.param(lambda data: data.pop("files"), id="files-missing"),
    pytest.param(lambda data: data.update(files=[["full.md", data["files"]["full.md"]]]), id="files-a-list"),
    pytest.param(lambda data: data.update(files="full.md"), id="files-a-string"),
    pytest.param(lambda data: data.update(files=None), id="files-null"),
    pytest.param(on_state(lambda state: state.pop()), id="state-too-few-items"),
    pytest.param(on_state(lambda state: state.append(0)), id="state-too-many-items"),
    pytest.param(lambda data: data["files"].update({"full.md": {"size": 1}}), id="state-an-object"),
    pytest.param(lambda data: data["files"].update({"full.md": None}), id="state-null"),
    pytest.param(on_article(lambda article: article.pop()), id="article-too-short"),
    pytest.param(on_article(lambda article: article.append(None)), id="article-too-long"),
    pytest.param(set_at(ARTICLE, "an article"), id="article-a-string-of-wrong-length"),
    pytest.param(on_article(lambda article: article[RELATED][0].pop()), id="related-too-short"),
    pytest.param(on_article(lambda article: article[RELATED][0].append(None)), id="related-too-long"),
    pytest.param(on_article(lambda article: article[IMAGES][0].pop()), id="image-too-short"),
    pytest.param(on_article(lambda article: article[IMAGES][0].append(1)), id="image-too-long"),
    pytest.param(on_state(lambda state: state[PROBLEMS][0].pop()), id="problem-too-short"),
    pytest.param(on_state(lambda state: state[PROBLEMS].append("oops")), id="problem-a-string"),
    pytest.param(set_at(ARTICLE, PROVIDER, ["Example News"]), id="provider-one-item"),
    pytest.param(set_at(ARTICLE, PROVIDER, ["Example News", "example.com", "x"]), id="provider-three-items"),
    pytest.param(set_at(ARTICLE, PROVIDER, {"n": "Example News"}), id="provider-an-object-of-one"),
    pytest.param(set_at(ARTICLE, PROVIDER, "ab"), id="provider-a-two-letter-string"),
    pytest.param(
        set_at(ARTICLE, PROVIDER, {"name": "X", "domain": "x.com"}),
        id="provider-an-object-of-two",
    ),
    pytest.param(set_at(ARTICLE, TOPICS, "AI"), id="topics-a-string"),
    pytest.param(set_at(ARTICLE, RELATED, ""), id="related-an-empty-string"),
    pytest.param(set_at(ARTICLE, IMAGES, 3), id="images-a-number"),
    pytest.param(set_at(PROBLEMS, None), id="problems-null"),
]

WRONG_TYPES = [
    pytest.param(set_at(ARTICLE, TITLE, 5), id="title-a-number"),
    pytest.param(set_at(ARTICLE, TITLE, None), id="title-null"),
    pytest.param(set_at(ARTICLE, URL, ["https://example.com"]), id="url-a-list"),
    pytest.param(set_at(ARTICLE, EXCERPT, None), id="excerpt-null"),
    pytest.param(set_at(ARTICLE, IMAGES, 0, I_WIDTH, "800"), id="width-a-string"),
    pytest.param(set_at(ARTICLE, IMAGES, 0, I_HEIGHT, 600.0), id="height-a-float"),
    pytest.param(set_at(ARTICLE, IMAGES, 0, I_URL, None), id="image-url-null"),
    pytest.param(set_at(ARTICLE, RELATED, 0, R_IMAGE, I_WIDTH, "120"), id="related-image-width-a-string"),
    pytest.param(set_at(PROBLEMS, 1, P_LINE, "9"), id="line-a-string"),
    pytest.param(set_at(PROBLEMS, 0, P_SEVERITY, 2), id="severity-a-number"),
    pytest.param(set_at(PROBLEMS, 0, P_PATH, None), id="problem-path-null"),
    pytest.param(set_at(ARTICLE, PUBLISHED, 1612173600), id="published-a-number"),
    pytest.param(set_at(ARTICLE, PUBLISHED, "yesterday"), id="published-not-a-date"),
    pytest.param(set_at(ARTICLE, PUBLISHED, "2021-02-31T10:00:00+00:00"), id="published-an-impossible-date"),
    pytest.param(set_at(ARTICLE, PUBLISHED, "2021-02-01T10:00:00"), id="published-naive"),
    pytest.param(set_at(ARTICLE, PUBLISHED, "2021-02-01"), id="published-a-naive-day"),
    pytest.param(set_at(ARTICLE, RELATED, 0, R_PUBLISHED, "2020-01-02T03:04:05"), id="related-published-naive"),
    pytest.param(set_at(ARTICLE, TOPICS, ["AI", 3]), id="topics-with-a-number"),
    pytest.param(set_at(ARTICLE, TOPICS, ["AI", None]), id="topics-with-null"),
    pytest.param(set_at(ARTICLE, PROVIDER, [3, "example.com"]), id="provider-name-a-number"),
    pytest.param(set_at(ARTICLE, PROVIDER, ["Example News", 3]), id="provider-domain-a-number"),
    pytest.param(set_at(ARTICLE, RELATED, 0, R_PROVIDER, [None, None]), id="related-provider-name-null"),
    pytest.param(set_at(SIZE, None), id="size-null"),
    pytest.param(set_at(SIZE, "large"), id="size-a-word"),
    pytest.param(set_at(MTIME, float("nan")), id="mtime-nan"),
    pytest.param(set_at(SIZE, "1234"), id="size-a-numeric-string"),
    pytest.param(set_at(MTIME, 1.6e18), id="mtime-a-float"),
    pytest.param(set_at(MTIME, float("inf")), id="mtime-infinity"),
    pytest.param(set_at(SIZE, -float("inf")), id="size-minus-infinity"),
    pytest.param(set_at(ARTICLE, IS_PUBLISHED, "false"), id="is-published-a-string"),
    pytest.param(set_at(STALE, "no"), id="stale-a-string"),
]


@pytest.mark.parametrize("change", WRONG_SHAPES)
def test_cache_of_the_wrong_shape_is_ignored(base_cache, articles_dir, caplog, change):
    rewrite(base_cache, change)
    assert_ignored(base_cache, articles_dir, caplog)


@pytest.mark.parametrize("change", WRONG_TYPES)
def test_cache_with_a_value_of_the_wrong_type_is_ignored(base_cache, articles_dir, caplog, change):
    rewrite(base_cache, change)
    assert_ignored(base_cache, articles_dir, caplog)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(set_at(ARTICLE, IMAGES, 0, I_WIDTH, True), id="width"),
        pytest.param(set_at(ARTICLE, IMAGES, 0, I_HEIGHT, False), id="height"),
        pytest.param(set_at(ARTICLE, RELATED, 0, R_IMAGE, I_WIDTH, True), id="related-image-width"),
        pytest.param(set_at(PROBLEMS, 1, P_LINE, True), id="line"),
    ],
)
def test_a_bool_for_a_pixel_size_or_line_is_a_wrong_type_so_the_cache_is_ignored(
    base_cache, articles_dir, caplog, change
):
    # parsecache.count() checks `type(value) is int` on purpose: JSON true is not the number 1.
    rewrite(base_cache, change)
    assert_ignored(base_cache, articles_dir, caplog)


@pytest.mark.parametrize("position", [SIZE, MTIME], ids=["size", "mtime"])
def test_a_bool_for_the_stamp_is_a_wrong_type_so_the_cache_is_ignored(base_cache, articles_dir, caplog, position):
    # The same rule as count(): feedsvc takes `true` as size 1 (int(True)), so a corrupt entry can match a 1-byte file.
    rewrite(base_cache, set_at(position, True))
    assert_ignored(base_cache, articles_dir, caplog)


def test_a_deeply_nested_cache_is_ignored(cache_path, articles_dir, caplog):
    cache_path.parent.mkdir(parents=True)
    cache_path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert_ignored(cache_path, articles_dir, caplog)


def test_cache_for_another_seeds_folder_is_ignored(base_cache, articles_dir, tmp_path, caplog):
    other = tmp_path / "other"
    other.mkdir()
    assert_ignored(base_cache, other, caplog)


@pytest.mark.parametrize(
    "limits",
    [Limits(file_bytes=999_999), Limits(title_chars=200), Limits(excerpt_chars=2_000)],
    ids=["MAX_FILE_BYTES", "MAX_TITLE_CHARS", "MAX_EXCERPT_CHARS"],
)
def test_cache_for_other_limits_is_ignored(base_cache, articles_dir, caplog, limits):
    assert_ignored(base_cache, articles_dir, caplog, limits)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda data: data.update(format=FORMAT - 1), id="older-format"),
        pytest.param(lambda data: data.update(format=FORMAT + 1), id="newer-format"),
        pytest.param(lambda data: data.update(format=str(FORMAT)), id="format-as-text"),
        pytest.param(lambda data: data.pop("format"), id="no-format"),
        pytest.param(lambda data: data.pop("seeds"), id="no-seeds"),
        pytest.param(lambda data: data.pop("limits"), id="no-limits"),
        pytest.param(lambda data: data["limits"].update(extra=1), id="unknown-limit"),
    ],
)
def test_cache_with_another_header_is_ignored(base_cache, articles_dir, caplog, change):
    rewrite(base_cache, change)
    assert_ignored(base_cache, articles_dir, caplog)


def test_cache_of_a_format_1_style_object_layout_is_ignored(base_cache, articles_dir, caplog):
    def as_objects(data):
        data["format"] = 1
        data["files"] = {
            "full.md": {"stamp": {"size": 1234, "mtime_ns": T0_NS}, "article": None, "problems": [], "stale": False}
        }

    rewrite(base_cache, as_objects)
    assert_ignored(base_cache, articles_dir, caplog)


def test_the_same_seeds_folder_through_a_symlink_uses_the_cache(cache_path, articles_dir, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(articles_dir, target_is_directory=True)
    states = hand_made_states()
    save(cache_file(cache_path.parent, link), link, LIMITS, states)
    assert load(cache_file(cache_path.parent, articles_dir), articles_dir, LIMITS) == states


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
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def spoil_not_json(path: Path) -> None:
    path.write_bytes(b"\x00\x01 this is no cache")


def spoil_state_shape(path: Path) -> None:
    rewrite(path, lambda data: [state.pop() for state in data["files"].values()])


def spoil_title_type(path: Path) -> None:
    rewrite(
        path, lambda data: [state[ARTICLE].__setitem__(TITLE, 42) for state in data["files"].values() if state[ARTICLE]]
    )


def spoil_naive_date(path: Path) -> None:
    rewrite(
        path,
        lambda data: [
            state[ARTICLE].__setitem__(PUBLISHED, "2021-02-01T10:00:00")
            for state in data["files"].values()
            if state[ARTICLE]
        ],
    )


def spoil_format(path: Path) -> None:
    rewrite(path, lambda data: data.update(format=FORMAT - 1))


@pytest.mark.parametrize(
    "spoil", [spoil_truncated, spoil_not_json, spoil_state_shape, spoil_title_type, spoil_naive_date, spoil_format]
)
def test_store_with_a_corrupt_cache_parses_everything_and_rewrites_the_cache(
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


def test_store_with_a_valid_cache_parses_nothing(mixed_seeds, private_cache_dir, load_calls):
    first = started(mixed_seeds, private_cache_dir)
    assert len(load_calls) == 8
    load_calls.clear()
    second = started(mixed_seeds, private_cache_dir)
    assert load_calls == []
    assert second.catalog.articles == first.catalog.articles
    assert second.catalog.problems == first.catalog.problems


def test_store_takes_what_a_valid_cache_says(seeds_dir, private_cache_dir, load_calls):
    # A cache for this folder, these limits and these stamps is believed without a parse.
    found = scan(seeds_dir)
    states = {
        name: replace(state, article=replace(state.article, title=f"Cached {name}"))
        for name, state in parsed_states(seeds_dir).items()
    }
    assert {name: s.stamp for name, s in states.items()} == found.files
    save(cache_file(private_cache_dir, seeds_dir), seeds_dir, LIMITS, states)
    load_calls.clear()
    store = started(seeds_dir, private_cache_dir)
    assert load_calls == []
    assert {a.title for a in store.catalog.articles} == {f"Cached {name}" for name in found.files}


def foreign_states(seeds_dir: Path) -> dict[str, FileState]:
    """This folder's names and stamps, with titles no parse of it gives."""
    return {
        name: replace(state, article=replace(state.article, title=f"Foreign {name}"))
        for name, state in parsed_states(seeds_dir).items()
    }


def test_store_ignores_another_folders_cache(seeds_dir, private_cache_dir, tmp_path, load_calls):
    other = tmp_path / "other-seeds"
    shutil.copytree(seeds_dir, other)
    other_cache = cache_file(private_cache_dir, other)
    save(other_cache, other, LIMITS, foreign_states(seeds_dir))  # right names and stamps, wrong folder
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


def test_save_leaves_only_the_cache_file_readable_by_its_owner(tmp_path, articles_dir):
    folder = tmp_path / "new" / "cache"
    path = cache_file(folder, articles_dir)
    save(path, articles_dir, LIMITS, hand_made_states())
    assert list(folder.iterdir()) == [path]
    assert not list(folder.glob(".parse-*.tmp"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_save_over_a_readable_cache_makes_it_private(cache_path, articles_dir):
    save(cache_path, articles_dir, LIMITS, {})
    cache_path.chmod(0o644)
    save(cache_path, articles_dir, LIMITS, hand_made_states())
    assert stat.S_IMODE(cache_path.stat().st_mode) == 0o600


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


@pytest.mark.parametrize(
    "error",
    [RuntimeError("encoder broke"), OSError(28, "No space left on device"), KeyboardInterrupt()],
    ids=["RuntimeError", "OSError", "KeyboardInterrupt"],
)
def test_save_that_fails_midway_keeps_the_old_cache_and_no_temp_file(cache_path, articles_dir, monkeypatch, error):
    old = hand_made_states()
    save(cache_path, articles_dir, LIMITS, old)
    before = cache_path.read_bytes()
    real, encoded = parsecache.encode_state, []

    def failing(state: FileState) -> list:
        encoded.append(state)
        if len(encoded) == 3:
            raise error
        return real(state)

    monkeypatch.setattr(parsecache, "encode_state", failing)
    with pytest.raises(type(error)):
        save(cache_path, articles_dir, LIMITS, changed_states())
    assert len(encoded) == 3
    assert cache_path.read_bytes() == before
    assert list(cache_path.parent.iterdir()) == [cache_path]
    assert load(cache_path, articles_dir, LIMITS) == old


def test_a_reader_during_a_save_sees_the_whole_old_cache(cache_path, articles_dir, monkeypatch):
    old = hand_made_states()
    save(cache_path, articles_dir, LIMITS, old)
    real, seen = parsecache.encode_state, []

    def reading(state: FileState) -> list:
        if not seen:  # midway: part of the new cache is in the temporary file
            seen.append(load(cache_path, articles_dir, LIMITS))
        return real(state)

    monkeypatch.setattr(parsecache, "encode_state", reading)
    new = changed_states()
    save(cache_path, articles_dir, LIMITS, new)
    assert seen == [old]
    assert load(cache_path, articles_dir, LIMITS) == new


def test_a_problem_of_a_file_whose_name_is_not_utf8_is_saved(cache_path, articles_dir):
    name = "b\udcff.md"  # os.scandir's name for the bytes b"b\xff.md"
    states = {name: make_state(None, [Problem(name, "front matter is not closed", "error", 1)])}
    assert_round_trip(cache_path, articles_dir, states)


# --- where the cache lives -----------------------------------------------------------------------


def test_cache_file_is_stable_for_one_folder_however_it_is_named(tmp_path, articles_dir, monkeypatch):
    cache = tmp_path / "cache"
    link = tmp_path / "link"
    link.symlink_to(articles_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    path = cache_file(cache, articles_dir)
    assert path.parent == cache and path.name.startswith("parse-") and path.suffix == ".json"
    assert cache_file(cache, articles_dir) == path
    assert cache_file(cache, Path("articles")) == path
    assert cache_file(cache, Path("articles/../articles/.")) == path
    assert cache_file(cache, link) == path


def test_cache_file_differs_between_folders(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b", tmp_path / "a" / "b", tmp_path / "A"]
    names = {cache_file(tmp_path / "cache", folder).name for folder in folders}
    assert len(names) == len(folders)


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "feedsvc"


@pytest.mark.parametrize("xdg", [None, ""], ids=["unset", "empty"])
def test_default_cache_dir_falls_back_to_dot_cache_in_home(tmp_path, monkeypatch, xdg):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "feedsvc"


# --- pauses --------------------------------------------------------------------------------------


def many_states(count: int) -> dict[str, FileState]:
    samples = list(hand_made_states().values())
    return {f"{n:04d}.md": renamed(samples[n % len(samples)], f"{n:04d}.md") for n in range(count)}


@pytest.mark.parametrize("count", [0, PAUSE_EVERY - 1, PAUSE_EVERY, 2 * PAUSE_EVERY + 7])
def test_save_with_pauses_writes_the_same_bytes_and_pauses_every_so_many_states(
    tmp_path, articles_dir, monkeypatch, count
):
    states = many_states(count)
    plain, paused = tmp_path / "plain" / "cache.json", tmp_path / "paused" / "cache.json"
    sleeps: list[float] = []
    monkeypatch.setattr(parsecache, "time", types.SimpleNamespace(sleep=sleeps.append))
    save(plain, articles_dir, LIMITS, states)
    assert sleeps == []  # no pause asked, none taken
    save(paused, articles_dir, LIMITS, states, pause=0.25)
    assert paused.read_bytes() == plain.read_bytes()
    assert sleeps == [0.25] * (count // PAUSE_EVERY)
    assert load(paused, articles_dir, LIMITS) == states


# --- turning the cache off -----------------------------------------------------------------------


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


def test_app_writes_its_cache_in_the_default_folder(seeds_dir, xdg_cache):
    store = app_store(seeds_dir)
    assert store.cache_path == cache_file(xdg_cache, seeds_dir)
    assert set(load(store.cache_path, seeds_dir, LIMITS)) == set(scan(seeds_dir).files)


def test_app_with_cache_dir_env_writes_there(seeds_dir, xdg_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", str(tmp_path / "elsewhere"))
    store = app_store(seeds_dir)
    assert store.cache_path == cache_file(tmp_path / "elsewhere", seeds_dir) and store.cache_path.is_file()
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
