"""Catalog: topics and their slugs, selection, and the entries of each feed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from helpers import CORPUS, SEEDS
from hypothesis import given, settings
from hypothesis import strategies as st

import feedsvc.feeds.catalog
from feedsvc.content.model import Article, Image, Problem, Provider, Related
from feedsvc.errors import TopicNotFound
from feedsvc.feeds.catalog import Catalog, Topic, build_entries, topic_slug
from feedsvc.runtime.loader import load_folder

UTC = timezone.utc
DAY1 = datetime(2021, 1, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return DAY1 + timedelta(days=n - 1)


def article(name: str, published: datetime = DAY1, topics=("AI",), is_published=True, related=(), url=None):
    return Article(
        path=f"{name}.md",
        title=name.title(),
        url=url or f"https://example.com/{name}",
        published=published,
        topics=tuple(topics),
        is_published=is_published,
        related=tuple(related),
    )


def link(name: str, published: datetime = DAY1, url=None) -> Related:
    return Related(title=f"Link {name}", url=url or f"https://other.example/{name}", published=published)


def urls(entries) -> list[str]:
    return [e.url for e in entries]


@pytest.fixture(scope="module")
def seeds() -> Catalog:
    result = load_folder(SEEDS)
    return Catalog(result.articles, result.problems)


# --- topic slugs and names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Computer Vision", "computer-vision"),
        ("AI", "ai"),
        ("AI in Autos", "ai-in-autos"),
        ("  Robotics!  ", "robotics"),
        ("Café Tech", "cafe-tech"),
    ],
)
def test_topic_slug(name, slug):
    assert topic_slug(name) == slug


def test_topic_names_map_slug_to_display_name():
    catalog = Catalog((article("a", topics=("Computer Vision", "AI")),))
    assert catalog.topic_names == {"ai": "AI", "computer-vision": "Computer Vision"}


def test_topics_that_slug_alike_merge_and_the_commonest_spelling_names_them():
    catalog = Catalog(
        (
            article("a", topics=("computer vision",)),
            article("b", topics=("Computer Vision",)),
            article("c", topics=("Computer-Vision",)),
            article("d", topics=("Computer Vision",)),
        )
    )
    assert catalog.topic_names == {"computer-vision": "Computer Vision"}
    assert urls(catalog.entries("computer-vision", False)) == [f"https://example.com/{n}" for n in "abcd"]


def test_equally_common_spellings_are_named_deterministically():
    one = Catalog((article("a", topics=("machine learning",)), article("b", topics=("Machine Learning",))))
    other = Catalog((article("b", topics=("Machine Learning",)), article("a", topics=("machine learning",))))
    assert one.topic_names == other.topic_names == {"machine-learning": "Machine Learning"}


def test_topic_that_slugs_to_nothing_is_left_out():
    catalog = Catalog((article("a", topics=("!!!", "AI")),))
    assert catalog.topic_names == {"ai": "AI"}


def test_drafts_never_name_a_topic_in_public():
    catalog = Catalog((
        article("a", topics=("AI in Marketing",)),
        article("b", topics=("AI IN MARKETING",), is_published=False),
        article("c", topics=("AI IN MARKETING", "Drafts only"), is_published=False),
    ))  # fmt: skip
    assert catalog.public_topic_names == catalog.topic_names_for(False) == {"ai-in-marketing": "AI in Marketing"}
    everything = {"ai-in-marketing": "AI IN MARKETING", "drafts-only": "Drafts only"}
    assert catalog.topic_names == catalog.topic_names_for(True) == everything
    assert [t.name for t in catalog.topics(False)] == ["AI in Marketing"]
    assert [t.name for t in catalog.topics(True)] == ["AI IN MARKETING", "Drafts only"]


# --- selection -------------------------------------------------------------------------------


def test_selected_is_the_published_articles_unless_include_all():
    catalog = Catalog((article("b", is_published=False), article("a"), article("c")))
    assert [a.path for a in catalog.selected(False)] == ["a.md", "c.md"]
    assert [a.path for a in catalog.selected(True)] == ["a.md", "b.md", "c.md"]


def test_entries_of_every_topic_respect_selection():
    catalog = Catalog((article("a", day(1)), article("b", day(2), is_published=False)))
    assert urls(catalog.entries(None, False)) == ["https://example.com/a"]
    assert urls(catalog.entries(None, True)) == ["https://example.com/b", "https://example.com/a"]


def test_entries_of_a_topic_hold_only_its_articles():
    catalog = Catalog((article("a", topics=("AI",)), article("r", topics=("Robotics",))))
    assert urls(catalog.entries("robotics", False)) == ["https://example.com/r"]


# --- entries ---------------------------------------------------------------------------------


def test_article_entry_carries_the_article_fields():
    image = Image("https://example.com/a.jpg", 10, 20)
    source = Article(
        path="a.md",
        title="A",
        url="https://example.com/a",
        published=DAY1,
        excerpt="E",
        provider=Provider("P", "p.example"),
        topics=("AI", "Robotics"),
        images=(image,),
        is_published=True,
    )
    (entry,) = Catalog((source,)).entries(None, False)
    assert (entry.url, entry.title, entry.published, entry.excerpt) == ("https://example.com/a", "A", DAY1, "E")
    assert (entry.provider, entry.image, entry.categories, entry.related_to) == (
        Provider("P", "p.example"),
        image,
        ("AI", "Robotics"),
        None,
    )


def test_related_link_becomes_an_entry_under_its_article_topics():
    source = article("a", topics=("AI", "Robotics"), related=[link("x", day(2))])
    entries = {e.url: e for e in Catalog((source,)).entries(None, False)}
    related = entries["https://other.example/x"]
    assert related.title == "Link x"
    assert related.published == day(2)
    assert related.categories == ("AI", "Robotics")
    assert related.related_to == source


def test_one_entry_per_url_when_two_articles_share_a_related_link():
    catalog = Catalog((article("a", related=[link("x")]), article("b", related=[link("x")])))
    assert sorted(urls(catalog.entries(None, False))) == [
        "https://example.com/a",
        "https://example.com/b",
        "https://other.example/x",
    ]


def test_article_beats_a_related_link_with_the_same_url():
    target = article("target", day(1), topics=("Robotics",))
    pointing = article("pointing", day(5), related=[link("t", day(3), url="https://example.com/target")])
    entries = [e for e in Catalog((pointing, target)).entries(None, False) if e.url == "https://example.com/target"]
    assert len(entries) == 1
    assert entries[0].title == "Target"
    assert entries[0].related_to is None
    assert entries[0].categories == ("Robotics",)


def test_related_link_of_several_articles_belongs_to_the_newest():
    old = article("old", day(1), topics=("Old",), related=[link("x")])
    new = article("new", day(3), topics=("New",), related=[link("x")])
    mid = article("mid", day(2), topics=("Mid",), related=[link("x")])
    (entry,) = [e for e in Catalog((old, new, mid)).entries(None, False) if e.url == "https://other.example/x"]
    assert entry.related_to == new
    assert entry.categories == ("New",)


def test_related_link_under_equally_new_articles_belongs_to_the_first_by_url():
    b = article("b", day(1), related=[link("x")])
    a = article("a", day(1), related=[link("x")])
    (entry,) = [e for e in Catalog((b, a)).entries(None, False) if e.url == "https://other.example/x"]
    assert entry.related_to == a


def test_related_link_of_an_unselected_article_is_left_out():
    hidden = article("hidden", day(2), is_published=False, related=[link("x")])
    catalog = Catalog((article("a"), hidden))
    assert urls(catalog.entries(None, False)) == ["https://example.com/a"]
    assert "https://other.example/x" in urls(catalog.entries(None, True))


def test_entries_are_newest_first_and_equal_dates_by_url():
    catalog = Catalog(
        (
            article("c", day(2)),
            article("b", day(2)),
            article("old", day(1), related=[link("new", day(9)), link("a", day(2))]),
        )
    )
    assert urls(catalog.entries(None, False)) == [
        "https://other.example/new",
        "https://example.com/b",
        "https://example.com/c",
        "https://other.example/a",
        "https://example.com/old",
    ]


def test_entry_order_compares_instants_not_wall_clock():
    early = article("z-early", datetime(2021, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5))))  # 07:00Z
    late = article("a-late", datetime(2021, 1, 1, 8, 0, tzinfo=UTC))
    assert urls(Catalog((early, late)).entries(None, False)) == [
        "https://example.com/a-late",
        "https://example.com/z-early",
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-2, 2), st.sampled_from("abc")), max_size=12))
def test_newest_first_orders_as_the_date_url_path_key(specs):
    # Few dates, offsets and URLs, so that ties are common; the paths are unique, as file names are.
    items = [
        article(f"p{i}", datetime(2021, 1, 1, 12, tzinfo=timezone(timedelta(hours=offset))) + timedelta(hours=hours),
                url=f"https://example.com/{letter}")
        for i, (hours, offset, letter) in enumerate(specs)
    ]  # fmt: skip
    expected = sorted(items, key=lambda a: (-a.published.timestamp(), a.url, a.path))
    assert feedsvc.feeds.catalog.newest_first(reversed(items), "path") == expected


def test_build_entries_of_nothing_is_empty():
    assert list(build_entries([])) == []


def test_entries_are_the_same_on_every_call():
    catalog = Catalog((article("a"), article("b", day(2))))
    assert list(catalog.entries(None, False)) == list(catalog.entries(None, False))


# --- unknown topics --------------------------------------------------------------------------


def test_unknown_topic_raises_topic_not_found():
    with pytest.raises(TopicNotFound, match="no topic 'nope'"):
        Catalog((article("a"),)).entries("nope", True)


def test_topic_with_only_unpublished_articles_is_not_found_unless_include_all():
    catalog = Catalog((article("a", topics=("AI",)), article("d", topics=("Drafts",), is_published=False)))
    with pytest.raises(TopicNotFound):
        catalog.entries("drafts", False)
    assert urls(catalog.entries("drafts", True)) == ["https://example.com/d"]


def test_topic_found_by_a_display_name_is_not_a_slug():
    with pytest.raises(TopicNotFound):
        Catalog((article("a", topics=("Computer Vision",)),)).entries("Computer Vision", False)


# --- duplicate webUrl ------------------------------------------------------------------------

SHARED = "https://example.com/shared"


def test_duplicate_url_gives_one_entry_the_newest():
    older = article("older", day(1), url=SHARED)
    newer = article("newer", day(2), url=SHARED)
    (entry,) = Catalog((older, newer)).entries(None, False)
    assert entry.title == "Newer"


def test_duplicate_url_with_equal_dates_gives_the_first_path_in_any_input_order():
    first, second = article("a-first", url=SHARED), article("b-second", url=SHARED)
    assert [e.title for e in Catalog((second, first)).entries(None, False)] == ["A-First"]
    assert [e.title for e in Catalog((first, second)).entries(None, False)] == ["A-First"]


def test_duplicate_url_warning_names_both_files():
    catalog = Catalog((article("older", day(1), url=SHARED), article("newer", day(2), url=SHARED)))
    assert catalog.problems == (
        Problem(
            "older.md",
            f"webUrl {SHARED} is also the webUrl of newer.md: one entry is served, from the newest selected file",
            "warning",
        ),
    )
    assert catalog.skipped == ()


def test_duplicate_url_warnings_follow_the_given_problems():
    given = Problem("broken.md", "no front matter", "error", 1)
    catalog = Catalog((article("a", url=SHARED), article("b", url=SHARED)), (given,))
    assert catalog.problems[0] == given
    assert [p.path for p in catalog.problems[1:]] == ["b.md"]
    assert catalog.skipped == (given,)


def test_no_duplicate_warning_for_distinct_urls():
    assert Catalog((article("a"), article("b"))).problems == ()


def test_articles_are_kept_in_path_order():
    assert [a.path for a in Catalog((article("b"), article("a"))).articles] == ["a.md", "b.md"]


# --- topic counts ----------------------------------------------------------------------------


def test_topics_list_counts_entries_including_related_links():
    catalog = Catalog(
        (
            article("a", topics=("AI", "Robotics"), related=[link("x"), link("y")]),
            article("b", topics=("AI",)),
            article("d", topics=("Drafts",), is_published=False),
        )
    )
    assert catalog.topics(False) == [Topic("ai", "AI", 4), Topic("robotics", "Robotics", 3)]
    assert catalog.topics(True) == [
        Topic("ai", "AI", 4),
        Topic("drafts", "Drafts", 1),
        Topic("robotics", "Robotics", 3),
    ]


def test_topics_are_sorted_by_name_ignoring_case():
    catalog = Catalog((article("a", topics=("zeta", "Alpha", "beta")),))
    assert [t.name for t in catalog.topics(False)] == ["Alpha", "beta", "zeta"]


def test_topic_count_equals_its_feed_length():
    catalog = Catalog(load_folder(CORPUS).articles)
    for include_all in (False, True):
        for topic in catalog.topics(include_all):
            assert topic.count == len(catalog.entries(topic.slug, include_all))


# --- over the seeds --------------------------------------------------------------------------


def test_seeds_topics(seeds):
    assert seeds.topic_names == {"ai": "AI", "computer-vision": "Computer Vision"}
    assert seeds.topics(False) == [Topic("ai", "AI", 3), Topic("computer-vision", "Computer Vision", 3)]
    assert seeds.topics(True) == [Topic("ai", "AI", 17), Topic("computer-vision", "Computer Vision", 17)]


def test_seeds_published_feed_is_the_one_article_and_its_related_links(seeds):
    entries = seeds.entries(None, False)
    assert urls(entries) == [
        "https://gizmodo.com/the-lapd-just-banned-its-officers-from-using-third-part-1845702878",
        "https://www.governing.com/security/New-Orleans-Police-Dept-Admits-to-Facial-Recognition-Use.html",
        "https://www.nola.com/news/crime_police/article_9eda8846-25e1-11eb-9c95-4f11b10ed17a.html",
    ]
    assert [e.related_to.path if e.related_to else None for e in entries] == [
        None,
        "003_b297a05077328abf.txt",
        "003_b297a05077328abf.txt",
    ]


def test_seeds_all_feed_has_one_entry_per_url_newest_first(seeds):
    entries = seeds.entries(None, True)
    assert len(entries) == 17
    assert len(set(urls(entries))) == 17
    keys = [(-e.published.timestamp(), e.url) for e in entries]
    assert keys == sorted(keys)
    assert (
        entries[0].url
        == "https://www.govtech.com/public-safety/LAPD-Commission-OKs-Detectives-to-Use-Facial-Recognition.html"
    )


def test_seeds_related_entries_carry_their_article_topics(seeds):
    related = [e for e in seeds.entries(None, True) if e.related_to is not None]
    assert len(related) == 12
    assert all(e.categories == e.related_to.topics == ("Computer Vision", "AI") for e in related)


def test_seeds_have_no_duplicate_warnings(seeds):
    assert seeds.problems == ()
    assert seeds.skipped == ()


def test_seeds_topic_feed_equals_the_all_feed(seeds):
    assert urls(seeds.entries("computer-vision", True)) == urls(seeds.entries(None, True))


def test_seeds_duplicate_file_gives_one_entry_and_a_warning(seeds_dir):
    original = seeds_dir / "003_b297a05077328abf.txt"
    (seeds_dir / "005_copy.txt").write_bytes(original.read_bytes())
    result = load_folder(seeds_dir)
    catalog = Catalog(result.articles, result.problems)
    gizmodo = "https://gizmodo.com/the-lapd-just-banned-its-officers-from-using-third-part-1845702878"
    assert urls(catalog.entries(None, False)).count(gizmodo) == 1
    assert [(p.path, p.severity) for p in catalog.problems] == [("005_copy.txt", "warning")]
    assert "003_b297a05077328abf.txt" in catalog.problems[0].message
    assert len(catalog.entries(None, True)) == 17


# --- inherit: a reload's catalog takes over what the previous one computed -----------------------

PARTS = ["by_topic", "topic_names", "public_topic_names", "topics", "entries", "some entries", "problems"]


def compute(catalog: Catalog, parts) -> None:
    """Ask a catalog for some of what it computes lazily (what requests did before a reload)."""
    for part in parts:
        if part == "by_topic":
            _ = catalog.by_topic
        elif part == "topic_names":
            _ = catalog.topic_names
        elif part == "public_topic_names":
            _ = catalog.public_topic_names
        elif part == "topics":
            catalog.topics(False), catalog.topics(True)
        elif part == "problems":
            _ = catalog.problems
        else:
            slugs = list(catalog.by_topic)[:: 2 if part == "some entries" else 1]
            for slug in [None, *slugs]:
                for include_all in (False, True):
                    try:
                        catalog.entries(slug, include_all)
                    except TopicNotFound:
                        pass


def view(catalog: Catalog) -> dict:
    """Everything readers can ask a catalog, as plain values."""
    found = {
        "topic_names": catalog.topic_names, "public_topic_names": catalog.public_topic_names,
        "by_topic": catalog.by_topic, "topics": (catalog.topics(False), catalog.topics(True)),
        "problems": catalog.problems, "skipped": catalog.skipped, "articles": catalog.articles,
    }  # fmt: skip
    for slug in [None, "no-such-topic", *catalog.topic_names, *catalog.by_topic]:
        for include_all in (False, True):
            try:
                found[slug, include_all] = catalog.entries(slug, include_all)
            except TopicNotFound:
                found[slug, include_all] = "not found"
    return found


def inherited(previous: Catalog, articles, problems=(), changed: int = 1000) -> Catalog:
    catalog = Catalog(tuple(articles), problems)
    catalog.inherit(previous, changed)
    return catalog


def assert_as_fresh(previous: Catalog, articles, problems=()) -> Catalog:
    """A catalog that inherits from `previous` answers exactly as a fresh one of the same articles,
    and `previous` (still served meanwhile) is unchanged. Returns a twin that inherited as well,
    with nothing computed yet (asking the checked one everything would hide the lazy paths)."""
    was = view(Catalog(previous.articles, previous.file_problems))
    twin = inherited(previous, articles, problems)
    catalog = inherited(previous, articles, problems)
    assert view(catalog) == view(Catalog(tuple(articles), problems))
    assert view(previous) == was
    return twin


A = article("a", day(1), topics=("AI", "Robotics"), related=[link("x", day(2))])
B = article("b", day(2), topics=("Drones",))
C = article("c", day(3), topics=("Computer Vision",), is_published=False)
D = article("d", day(2), topics=("AI",), related=[link("y", day(4))])
BASE = {"a": A, "b": B, "c": C, "d": D}

CHANGES = {
    "nothing": lambda files: files,
    "touch (an equal copy)": lambda files: {**files, "a": replace(A)},
    "edit a title": lambda files: {**files, "a": replace(A, title="A, edited")},
    "change topics": lambda files: {**files, "a": replace(A, topics=("Robotics", "Quantum"))},
    "respell a topic": lambda files: {
        **files,
        "b": replace(B, topics=("drones",)),
        "e": article("e", topics=("drones",)),
    },
    "respell a topic in drafts": lambda files: {
        **files,
        "e": article("e", topics=("drones",), is_published=False),
        "f": article("f", topics=("drones",), is_published=False),
    },
    "add": lambda files: {**files, "e": article("e", day(5), topics=("ai", "Drones"))},
    "add to no topic": lambda files: {**files, "e": article("e", day(5), topics=("!!!",))},
    "remove": lambda files: {k: v for k, v in files.items() if k != "d"},
    "remove a topic's last article": lambda files: {k: v for k, v in files.items() if k != "b"},
    "remove everything": lambda files: {},
    "publish": lambda files: {**files, "c": replace(C, is_published=True)},
    "unpublish": lambda files: {**files, "a": replace(A, is_published=False)},
    "related link moves to another topic": lambda files: {
        **files,
        "a": replace(A, related=()),
        "b": replace(B, related=(link("x", day(2)),)),
    },
    "duplicate url": lambda files: {**files, "e": article("e", day(9), topics=("Drones",), url=A.url)},
    "duplicate url goes": lambda files: {k: v for k, v in files.items() if k != "e"},
    "related link becomes an article": lambda files: {
        **files,
        "e": article("e", day(1), topics=("Drones",), url="https://other.example/y"),
    },
}


@pytest.mark.parametrize(
    "parts",
    [[], PARTS, ["by_topic"], ["topic_names"], ["public_topic_names"], ["some entries"]],
    ids=["nothing computed", "everything computed", "by_topic", "topic_names", "public_topic_names", "some entries"],
)
@pytest.mark.parametrize("change", list(CHANGES))
def test_inherited_catalog_answers_as_a_fresh_one(change, parts):
    before = dict(BASE)
    if change == "duplicate url goes":
        before["e"] = article("e", day(9), topics=("Drones",), url=A.url)
    previous = Catalog(tuple(before.values()), (Problem("zz.md", "no front matter", "error", 1),))
    compute(previous, parts)
    after = CHANGES[change](before)
    assert_as_fresh(previous, after.values(), (Problem("zz.md", "no front matter", "error", 1),))


def test_catalogs_that_inherit_in_a_chain_answer_as_fresh_ones():
    files = dict(BASE)
    previous = Catalog(tuple(files.values()))
    for number, change in enumerate(CHANGES.values()):
        files = change(files)
        if number % 2:
            compute(previous, PARTS)
        previous = assert_as_fresh(previous, files.values())


def test_unchanged_topics_keep_their_entries_and_changed_ones_are_made_again():
    previous = Catalog(tuple(BASE.values()))
    compute(previous, PARTS)
    catalog = inherited(previous, [replace(A, title="A, edited"), B, C, D])  # a is in AI and Robotics
    for include_all in (False, True):
        assert catalog.entries("drones", include_all) is previous.entries("drones", include_all)
        for slug in ("ai", "robotics", None):
            assert catalog.entries(slug, include_all) is not previous.entries(slug, include_all)
            assert "A, edited" in [e.title for e in catalog.entries(slug, include_all)]
    assert catalog.entries("computer-vision", True) is previous.entries("computer-vision", True)
    assert catalog.by_topic["drones"] is previous.by_topic["drones"]
    assert catalog.by_topic["ai"] != previous.by_topic["ai"]


def test_an_equal_copy_of_an_article_counts_as_a_change():
    previous = Catalog(tuple(BASE.values()))
    compute(previous, PARTS)
    catalog = inherited(previous, [replace(A), B, C, D])
    assert catalog.entries("robotics", False) is not previous.entries("robotics", False)
    assert catalog.entries("robotics", False) == previous.entries("robotics", False)
    assert catalog.entries("drones", False) is previous.entries("drones", False)


def test_too_many_changes_inherit_nothing_but_answer_the_same():
    previous = Catalog(tuple(BASE.values()))
    compute(previous, PARTS)
    articles = [replace(A, title="A, edited"), B, C, D]
    catalog = inherited(previous, articles, changed=1)  # 2 differ (the old a and the new)
    assert catalog.entries("drones", False) is not previous.entries("drones", False)
    assert view(catalog) == view(Catalog(tuple(articles)))


# --- the public Last-Modified: moved by published articles only ------------------------------------

T0 = datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)
MTIMES = {f"{name}.md": int((T0 + timedelta(minutes=n)).timestamp()) * 10**9 for n, name in enumerate("abcdefg")}


def follow(previous: Catalog, files: dict, last_modified: datetime) -> Catalog:
    catalog = Catalog(tuple(files.values()), last_modified=last_modified)
    catalog.inherit(previous, modified_ns=MTIMES.__getitem__)
    return catalog


@pytest.mark.parametrize("change", ["add a draft", "edit a draft", "remove a draft", "nothing"])
def test_draft_changes_keep_the_public_last_modified(change):
    files = dict(BASE)  # c is the draft
    previous = Catalog(tuple(files.values()), last_modified=T0)
    if change == "add a draft":
        files["e"] = article("e", topics=("AI",), is_published=False)
    elif change == "edit a draft":
        files["c"] = replace(C, title="C, edited")
    elif change == "remove a draft":
        del files["c"]
    catalog = follow(previous, files, last_modified=T0 + timedelta(days=1))  # every file's moved on
    assert catalog.last_modified_for(True) == T0 + timedelta(days=1)
    assert catalog.public_last_modified == catalog.last_modified_for(False) == T0


def test_a_published_change_moves_the_public_last_modified_to_the_newest_mtime_of_its_files():
    previous = Catalog(tuple(BASE.values()), last_modified=T0)
    files = {**BASE, "b": replace(B, title="B, edited"), "e": article("e"), "f": article("f", is_published=False)}
    catalog = follow(previous, files, last_modified=T0 + timedelta(days=1))
    assert catalog.public_last_modified == T0 + timedelta(minutes=4)  # e's mtime: f is a draft


@pytest.mark.parametrize("change", ["remove", "unpublish", "equal copy with an old mtime"])
def test_a_published_change_without_a_newer_mtime_moves_the_public_last_modified_to_now(change):
    previous = Catalog(tuple(BASE.values()), last_modified=T0 + timedelta(days=1))
    files = dict(BASE)
    if change == "remove":
        del files["a"]
    elif change == "unpublish":
        files["a"] = replace(A, is_published=False)
    else:
        files["a"] = replace(A)
    before = datetime.now(UTC).replace(microsecond=0)
    catalog = follow(previous, files, last_modified=T0 + timedelta(days=1))
    assert catalog.public_last_modified >= before  # never back, never kept: a client's copy is outdated


def test_the_public_last_modified_never_moves_back():
    previous = Catalog(tuple(BASE.values()), last_modified=T0 + timedelta(days=1))
    catalog = follow(previous, {**BASE, "e": article("e")}, last_modified=T0 + timedelta(days=1))  # e: an old mtime
    assert catalog.public_last_modified > T0 + timedelta(days=1)


def test_a_catalog_that_inherits_nothing_starts_from_every_files_last_modified():
    assert Catalog(tuple(BASE.values()), last_modified=T0).public_last_modified == T0


# Random small article sets and random changes (edits, additions, removals, equal copies),
# with random parts computed on each catalog before the next one inherits from it.
VERSIONS = st.fixed_dictionaries({
    "topics": st.lists(st.sampled_from(["AI", "ai", "Robotics", "Computer Vision", "computer-vision", "!!!"]), max_size=3),
    "published": st.booleans(),
    "day": st.integers(1, 3),
    "url": st.sampled_from([None, "https://example.com/shared", "https://other.example/l1"]),
    "related": st.lists(st.tuples(st.sampled_from(["l1", "l2", "l3"]), st.integers(1, 3)), max_size=2),
    "title": st.sampled_from(["One", "Two"]),
})  # fmt: skip
FILE_NAMES = st.sampled_from(["a", "b", "c", "d", "e", "f"])


def made(name: str, version: dict) -> Article:
    return replace(
        article(name, day(version["day"]), version["topics"], version["published"],
                [link(n, day(d)) for n, d in version["related"]], version["url"]),
        title=f"{name} {version['title']}",
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    start=st.dictionaries(FILE_NAMES, VERSIONS, max_size=5),
    steps=st.lists(
        st.tuples(st.dictionaries(FILE_NAMES, st.one_of(st.none(), st.just("copy"), VERSIONS), max_size=3),
                  st.lists(st.sampled_from(PARTS), max_size=4), st.booleans()),
        min_size=1, max_size=4,
    ),
    computed_first=st.lists(st.sampled_from(PARTS), max_size=4),
)  # fmt: skip
@pytest.mark.slow
def test_inherited_catalogs_after_random_changes_answer_as_fresh_ones(start, steps, computed_first):
    files = {name: made(name, version) for name, version in start.items()}
    previous = Catalog(tuple(files.values()))
    compute(previous, computed_first)
    for changes, parts, broken in steps:
        files = dict(files)  # unchanged files keep their Article objects, as the store gives them
        for name, version in changes.items():
            if version is None:
                files.pop(name, None)
            elif version == "copy":
                if name in files:
                    files[name] = replace(files[name])
            else:
                files[name] = made(name, version)
        problems = (Problem("broken.md", "no front matter", "error", 1),) if broken else ()
        catalog = inherited(previous, files.values(), problems)
        compute(catalog, parts)  # what requests asked before the next reload
        assert_as_fresh(previous, files.values(), problems)
        previous = catalog
    assert view(previous) == view(Catalog(tuple(files.values()), problems))


# --- problems: the files' own, then shared webUrls, computed when first asked for ----------------


def test_problems_are_computed_when_first_asked_for(monkeypatch):
    calls = []
    real = feedsvc.feeds.catalog.duplicate_url_warnings

    def counted(articles):
        calls.append(len(articles))
        return real(articles)

    monkeypatch.setattr(feedsvc.feeds.catalog, "duplicate_url_warnings", counted)
    error = Problem("broken.md", "no front matter", "error", 1)
    catalog = Catalog((article("a", day(2), url=SHARED), article("b", day(1), url=SHARED)), (error,))
    catalog.entries(None, True)
    catalog.topics(True)
    assert calls == []
    expected = (
        error,
        Problem(
            "b.md",
            f"webUrl {SHARED} is also the webUrl of a.md: one entry is served, from the newest selected file",
            "warning",
        ),
    )
    assert catalog.problems == expected
    assert catalog.problems == expected
    assert calls == [2]


def test_skipped_holds_the_files_errors_but_no_warning_and_no_stale_file():
    error = Problem("broken.md", "no front matter", "error", 1)
    stale = Problem("c.md", "invalid YAML", "error", 3)
    warning = Problem("w.md", "image dropped", "warning")
    articles = (article("a", url=SHARED), article("b", url=SHARED), article("c"))
    catalog = Catalog(articles, (error, stale, warning), stale=("c.md",))
    assert catalog.skipped == (error,)
    assert catalog.problems[:3] == (error, stale, warning)
    assert [(p.path, p.severity) for p in catalog.problems[3:]] == [("b.md", "warning")]
    assert catalog.file_problems == (error, stale, warning)


def test_warm_computes_what_public_requests_ask_for_as_they_would(read_only_folders):
    result = load_folder(read_only_folders / "corpus")
    warmed, lazy = Catalog(result.articles, result.problems), Catalog(result.articles, result.problems)
    warmed.warm()
    assert warmed.topics(include_all=False) == lazy.topics(include_all=False)
    for slug in [None, *lazy.by_topic]:
        try:
            expected = lazy.entries(slug, include_all=False)
        except TopicNotFound:
            continue
        assert warmed.entries(slug, include_all=False) == expected
    assert warmed.problems == lazy.problems
