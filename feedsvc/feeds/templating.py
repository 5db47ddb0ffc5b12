"""What the renderers that write for people (digest, HTML pages) share: one Jinja environment over
feedsvc/feeds/templates (HTML autoescaped) and one way to write a date."""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
templates = Environment(
    loader=PackageLoader("feedsvc.feeds", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def day(moment: datetime) -> str:
    """A date as readers everywhere read it, the same in any locale: "18 Nov 2020"."""
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"
