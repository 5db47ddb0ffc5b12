"""parse_article and its helpers: required fields fail loudly, optional ones are coerced or dropped."""

from __future__ import annotations

import dataclasses
import warnings as pywarnings
from datetime import date, datetime, timedelta, timezone

import pytest
from helpers import article_fields

from feedsvc.content.fields import Warnings, as_list, clean_text, describe, parse_article, to_bool, to_topics, to_utc
from feedsvc.content.model import Image, Provider, Related
from feedsvc.errors import ArticleError

UTC = timezone.utc
PATH = "news/x.md"


def parse(**overrides):
    """(Article, warning messages) for the default valid fields with overrides (None removes a field)."""
    found = Warnings(PATH)
    article = parse_article(article_fields(**overrides), PATH, found)
    return article, [p.message for p in found.problems]


def parse_error(**overrides) -> ArticleError:
    with pytest.raises(ArticleError) as caught:
        parse(**overrides)
    return caught.value


# --- required fields -------------------------------------------------------------------------


def test_valid_fields_give_the_article():
    article, found = parse()
    assert article.path == PATH
    assert article.title == "A test article"
    assert article.url == "https://example.com/news/test-article"
    assert article.published == datetime(2021, 2, 1, 10, 0, tzinfo=UTC)
    assert article.excerpt == "What happened, in one line."
    assert article.is_published is True
    assert found == []


@pytest.mark.parametrize(
    ("field", "hint"),
    [("title", 'title: "..."'), ("webUrl", 'webUrl: "https://..."'), ("publishedDateTime", "publishedDateTime: 2021")],
)
def test_missing_required_field_names_it_and_shows_how_to_add_it(field, hint):
    error = parse_error(**{field: None})
    assert error.path == PATH
    assert field in error.reason
    assert "missing" in error.reason
    assert hint in error.reason


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_empty_title_is_an_error_naming_the_field(value):
    error = parse_error(title=value)
    assert error.reason == "title is empty: give the article a title"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_web_url_is_an_error_with_an_example(value):
    error = parse_error(webUrl=value)
    assert error.reason.startswith("webUrl ")
    assert "https://example.com/story" in error.reason


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_date_is_an_error_with_an_iso_example(value):
    error = parse_error(publishedDateTime=value)
    assert error.reason.startswith("publishedDateTime ")
    assert "ISO 8601, e.g. 2021-01-13T23:56:00Z" in error.reason


@pytest.mark.parametrize(("value", "kind"), [(["a"], "list"), ({"a": 1}, "dict"), (True, "bool")])
def test_title_of_wrong_type_is_an_error_naming_the_type(value, kind):
    assert parse_error(title=value).reason == f"title must be text, not a {kind}"


@pytest.mark.parametrize("value", [["https://example.com/"], {"url": "https://example.com/"}, 42, True])
def test_web_url_of_wrong_type_is_an_error(value):
    reason = parse_error(webUrl=value).reason
    assert reason.startswith("webUrl must be an absolute http(s) URL")


@pytest.mark.parametrize("value", ["javascript:alert(1)", "ftp://example.com/x", "/news/x"])
def test_web_url_that_is_not_absolute_http_is_an_error(value):
    reason = parse_error(webUrl=value).reason
    assert reason == f"webUrl {value!r} is not an absolute http(s) URL"


@pytest.mark.parametrize("value", [["2021-01-01"], {"a": 1}, True, 1610582160])
def test_date_of_wrong_type_is_an_error_with_an_example(value):
    reason = parse_error(publishedDateTime=value).reason
    assert reason == f"publishedDateTime must be a date such as 2021-01-13T23:56:00Z, not {describe(value)}"


def test_numeric_title_becomes_text():
    assert parse(title=1984)[0].title == "1984"


def test_title_white_space_is_folded():
    assert parse(title="  A\n folded\ttitle ")[0].title == "A folded title"


def test_web_url_is_normalised():
    assert parse(webUrl="HTTPS://Example.com/a b")[0].url == "https://example.com/a%20b"


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2021, 1, 13, 23, 56, tzinfo=UTC), datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        (datetime(2021, 1, 13, 23, 56), datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        (
            datetime(2021, 1, 13, 23, 56, tzinfo=timezone(timedelta(hours=2))),
            datetime(2021, 1, 13, 21, 56, tzinfo=UTC),
        ),
        (
            datetime(2021, 1, 13, 23, 56, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2021, 1, 14, 4, 56, tzinfo=UTC),
        ),
        (date(2021, 1, 13), datetime(2021, 1, 13, 0, 0, tzinfo=UTC)),
    ],
    ids=["aware-utc", "naive", "plus-two-hours", "minus-five-hours", "date-only"],
)
def test_date_values_become_utc(value, expected):
    result = to_utc(value, PATH, "publishedDateTime")
    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-01-13T23:56:00Z", datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        ("2021-01-13T23:56:00+02:00", datetime(2021, 1, 13, 21, 56, tzinfo=UTC)),
        ("2021-01-13T23:56:00", datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        ("2021-01-13", datetime(2021, 1, 13, 0, 0, tzinfo=UTC)),
        (" 2021-01-13T23:56:00Z ", datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        ("Wed, 13 Jan 2021 23:56:00 +0000", datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        ("Wed, 13 Jan 2021 23:56:00 GMT", datetime(2021, 1, 13, 23, 56, tzinfo=UTC)),
        ("Wed, 13 Jan 2021 23:56:00 -0500", datetime(2021, 1, 14, 4, 56, tzinfo=UTC)),
    ],
)
def test_quoted_date_text_is_parsed_to_utc(text, expected):
    assert parse(publishedDateTime=text)[0].published == expected


@pytest.mark.parametrize("text", ["garbage", "yesterday", "2021-13-45", "99999999999999999999", "1610582160"])
def test_garbage_date_text_is_an_error_with_an_example(text):
    reason = parse_error(publishedDateTime=text).reason
    assert reason == f"publishedDateTime {text!r} is not a date: use ISO 8601, e.g. 2021-01-13T23:56:00Z"


def test_rfc2822_named_zone_is_converted_to_utc():
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")
        published = parse(publishedDateTime="Wed, 13 Jan 2021 23:56:00 EST")[0].published
    assert published == datetime(2021, 1, 14, 4, 56, tzinfo=UTC)


@pytest.mark.parametrize("text", ["Jan 13", "12:00"])
def test_date_without_year_is_an_error(text):
    with pytest.raises(ArticleError):
        parse(publishedDateTime=text)


def test_date_out_of_range_in_utc_is_an_article_error():
    with pytest.raises(ArticleError):
        to_utc("0001-01-01T00:00:00+01:00", PATH, "publishedDateTime")


# --- published -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "true", "True", "yes", "YES", " yes ", "on", "1", 1])
def test_published_explicit_yes_publishes(value):
    article, found = parse(published=value)
    assert article.is_published is True
    assert found == []


@pytest.mark.parametrize("value", [False, "false", "no", "off", "0", 0, ""])
def test_published_explicit_no_does_not_publish(value):
    article, found = parse(published=value)
    assert article.is_published is False
    assert found == []


def test_published_missing_is_false_without_warning():
    article, found = parse(published=None)
    assert article.is_published is False
    assert found == []


@pytest.mark.parametrize("value", ["maybe", "draft", 2, ["true"], {"a": 1}])
def test_published_unclear_is_false_with_a_warning(value):
    article, found = parse(published=value)
    assert article.is_published is False
    assert found == [f"published: {describe(value)} is neither true nor false; the article is not published"]


def test_to_bool_warning_carries_the_file_path_and_severity():
    found = Warnings(PATH)
    assert to_bool("perhaps", found) is False
    assert [(p.path, p.severity) for p in found.problems] == [(PATH, "warning")]


# --- topics ----------------------------------------------------------------------------------


def test_topics_scalar_is_a_list_of_one():
    assert parse(topics="AI")[0].topics == ("AI",)


def test_topics_keep_the_file_order():
    assert parse(topics=["Robotics", "AI", "Computer Vision"])[0].topics == ("Robotics", "AI", "Computer Vision")


def test_topics_duplicates_are_dropped_silently():
    article, found = parse(topics=["AI", "Robotics", "AI", "AI  "])
    assert article.topics == ("AI", "Robotics")
    assert found == []


@pytest.mark.parametrize("blank", ["", "   ", None, ["x"], {"a": 1}])
def test_topics_blank_or_structured_are_dropped_with_a_warning(blank):
    article, found = parse(topics=["AI", blank, "Robotics"])
    assert article.topics == ("AI", "Robotics")
    assert found == [f"topic {describe(blank)} is not a name; it is ignored"]


def test_topics_missing_is_empty():
    assert parse(topics=None)[0].topics == ()


def test_topic_white_space_is_folded_and_numbers_become_names():
    assert to_topics(["Computer \n Vision", 5], Warnings(PATH)) == ("Computer Vision", "5")


@pytest.mark.parametrize(("value", "expected"), [(None, []), ("a", ["a"]), (["a", "b"], ["a", "b"]), (3, [3])])
def test_as_list(value, expected):
    assert as_list(value) == expected


def test_clean_text_folds_white_space():
    assert clean_text(" a \n\n b\tc ") == "a b c"


# --- provider --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"name": "ABC7", "domain": "abc7.com"}, Provider("ABC7", "abc7.com")),
        ({"name": " ABC \n 7 "}, Provider("ABC 7", None)),
        ({"domain": "abc7.com"}, Provider("abc7.com", "abc7.com")),
        ("ABC7", Provider("ABC7", None)),
        ({}, None),
        ({"name": ""}, None),
        (["ABC7"], None),
        (None, None),
    ],
    ids=[
        "mapping",
        "mapping-name-only",
        "domain-only",
        "bare-string",
        "empty-mapping",
        "blank-name",
        "list",
        "missing",
    ],
)
def test_provider_as_mapping_or_bare_string(value, expected):
    assert parse(provider=value)[0].provider == expected


# --- images ----------------------------------------------------------------------------------


def test_image_mapping_keeps_url_and_size():
    assert parse()[0].images == (Image("https://example.com/img.jpg", 800, 600),)


def test_image_scalar_url_is_an_image_without_size():
    assert parse(images="https://example.com/pic.jpg")[0].images == (Image("https://example.com/pic.jpg"),)


def test_image_list_of_bare_urls():
    images = parse(images=["https://example.com/a.jpg", "https://example.com/b c.jpg"])[0].images
    assert images == (Image("https://example.com/a.jpg"), Image("https://example.com/b%20c.jpg"))


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [("800", "600", (800, 600)), (800.0, 600.9, (800, 600)), ("abc", -5, (None, None)), (0, None, (None, None))],
)
def test_image_width_and_height_are_coerced(width, height, expected):
    images = parse(images=[{"url": "https://example.com/i.jpg", "width": width, "height": height}])[0].images
    assert (images[0].width, images[0].height) == expected


def test_image_boolean_width_is_nonsense():
    images = parse(images=[{"url": "https://example.com/i.jpg", "width": True}])[0].images
    assert images[0].width is None


def test_bad_image_url_is_dropped_with_a_warning_and_the_others_kept():
    article, found = parse(images=[{"url": "javascript:alert(1)"}, "https://example.com/ok.jpg"])
    assert article.images == (Image("https://example.com/ok.jpg"),)
    assert found == ["image dropped: url 'javascript:alert(1)' is not an absolute http(s) URL"]


@pytest.mark.parametrize("value", [{"width": 3}, None, 5])
def test_image_without_url_is_dropped_with_a_warning(value):
    article, found = parse(images=[value])
    assert article.images == ()
    assert found == ["image dropped: url must be an absolute http(s) URL, e.g. https://example.com/story"]


# --- related links ---------------------------------------------------------------------------

LINK = {
    "title": "Related story",
    "webUrl": "https://other.example/story",
    "publishedDateTime": "2021-01-30T08:00:00Z",
    "excerpt": "More.",
    "provider": {"name": "Other", "domain": "other.example"},
    "images": [{"url": "https://other.example/pic.jpg", "width": 100, "height": 50}],
}


def test_related_link_is_parsed():
    article, found = parse(related=[LINK])
    assert article.related == (
        Related(
            title="Related story",
            url="https://other.example/story",
            published=datetime(2021, 1, 30, 8, 0, tzinfo=UTC),
            excerpt="More.",
            provider=Provider("Other", "other.example"),
            image=Image("https://other.example/pic.jpg", 100, 50),
        ),
    )
    assert found == []


def test_related_link_without_date_takes_the_article_date():
    link = {k: v for k, v in LINK.items() if k != "publishedDateTime"}
    assert parse(related=[link])[0].related[0].published == datetime(2021, 2, 1, 10, 0, tzinfo=UTC)


def test_bad_related_link_is_dropped_with_a_warning_and_the_others_and_article_stay():
    second = dict(LINK, webUrl="https://other.example/second")
    article, found = parse(related=[LINK, dict(LINK, webUrl="ftp://other.example/x"), second])
    assert article.title == "A test article"
    assert [r.url for r in article.related] == ["https://other.example/story", "https://other.example/second"]
    assert found == ["related link 2 dropped: 'ftp://other.example/x' is not an absolute http(s) URL"]


@pytest.mark.parametrize("value", ["https://other.example/story", 5, ["x"]])
def test_non_mapping_related_link_is_dropped_with_a_warning(value):
    article, found = parse(related=[value, LINK])
    assert [r.url for r in article.related] == ["https://other.example/story"]
    assert found == ["related link 1 dropped: must be a mapping with title and webUrl"]


def test_related_link_without_title_is_dropped_with_a_warning():
    article, found = parse(related=[dict(LINK, title="  ")])
    assert article.related == ()
    assert found == ["related link 1 dropped: has no title"]


def test_related_link_with_garbage_date_is_dropped_with_the_reason():
    article, found = parse(related=[dict(LINK, publishedDateTime="soon")])
    assert article.related == ()
    assert found == [
        "related link 1 dropped: publishedDateTime 'soon' is not a date: use ISO 8601, e.g. 2021-01-13T23:56:00Z"
    ]


def test_related_link_uses_its_first_usable_image():
    link = dict(LINK, images=[{"url": "not a url"}, "https://other.example/second.jpg"])
    article, found = parse(related=[link])
    assert article.related[0].image == Image("https://other.example/second.jpg")
    assert found == []


def test_related_link_as_a_single_mapping_is_a_list_of_one():
    assert [r.url for r in parse(related=LINK)[0].related] == ["https://other.example/story"]


def test_related_link_with_out_of_range_date_is_dropped_and_the_article_stays():
    article, found = parse(related=[dict(LINK, publishedDateTime="0001-01-01T00:00:00+01:00")])
    assert article.related == ()
    assert len(found) == 1


# --- secured and unknown keys ----------------------------------------------------------------

SECRET = "qZM4dm6mlLjnp8b+nKA59V4TFxNR9ISDVPOELseWT7oF==;7TDTuVBDJlP00w/jD5zEaA=="


def test_secured_never_appears_in_the_article():
    article, found = parse(secured=SECRET, related=[dict(LINK, secured=SECRET)])
    assert SECRET not in repr(dataclasses.asdict(article))
    assert "secured" not in repr(dataclasses.asdict(article))
    assert found == []


def test_unknown_keys_are_ignored():
    plain = parse()[0]
    extra = parse(category="news", quality=55, heat=-1, ampWebUrl="https://example.com/amp", isCached=True)
    assert extra == (plain, [])


def test_equal_related_links_and_topic_names_are_shared_objects():
    # Thousands of articles recommend the same links and name the same topics: one object each.
    link = {
        "title": "Shared story",
        "webUrl": "https://example.com/shared",
        "publishedDateTime": "2021-01-01T00:00:00Z",
    }
    first, second = (
        parse_article(article_fields(webUrl=f"https://example.com/{n}", related=[dict(link)], topics=[f"Shared topic {n}"[:-2]]),
                      f"{n}.md", Warnings(f"{n}.md"))
        for n in ("a", "b")
    )  # fmt: skip
    assert first.related[0] is second.related[0]
    assert first.topics[0] is second.topics[0]
