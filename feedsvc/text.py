"""Repair text before and after YAML parsing, so that odd characters are fixed, not refused.

YAML 1.1 (section 5.1) and XML 1.0 (section 2.2) forbid most control characters; scrapers leave
them, and mojibake such as "â€™", in real files. Pure core: no Flask.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import ftfy

# C0 controls but tab/LF/CR, DEL, and the noncharacters U+FFFE/U+FFFF: removed before parsing.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
# C1 controls (U+0080-U+009F) are forbidden by YAML too, but ftfy needs them to undo mojibake
# ("â€\x9d" is a mis-decoded right quote): park them in the Private Use Area while YAML parses.
_C1 = re.compile("[\x80-\x9f]")
_PARKED = re.compile("[\ue080-\ue09f]")
_FTFY = ftfy.TextFixerConfig(uncurl_quotes=False, fix_character_width=False, unescape_html=False, explain=False)
ELLIPSIS = "…"


_SUSPECT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
# ftfy is only needed where mojibake can be: Latin-1 letters such as "Ã" and "â" start every
# UTF-8 sequence mis-decoded as Latin-1 or Windows-1252 (and parked C1 controls).
_MOJIBAKE_HINT = re.compile("[\u00a0-\u00ff\ue080-\ue09f\ufffd]")


def prepare_for_yaml(text: str) -> str:
    """Drop characters no YAML or XML document may hold; park C1 controls for `plain_text`."""
    if not _SUSPECT.search(text):
        return text
    text = _FORBIDDEN.sub("", text)
    return _C1.sub(lambda m: chr(ord(m.group()) + 0xE000), text)


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, entities decoded, scripts and styles dropped."""

    _SKIP = {"script", "style", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        self._skipping += tag in self._SKIP
        if tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self._skipping -= tag in self._SKIP and self._skipping > 0

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """The plain text of a string that may hold HTML tags or entities."""
    if "<" not in text and "&" not in text:
        return text
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    return "".join(extractor.parts)


def cut(text: str, limit: int | None) -> str:
    """Cut text to at most `limit` characters at a word boundary, marking the cut with an ellipsis."""
    if limit is None or len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:  # a word boundary not too far back; else cut the long word
        head = head[:space]
    return head.rstrip(" ,;:.-") + ELLIPSIS


def plain_text(text: str, limit: int | None = None, markup: bool = True) -> str:
    """Repaired text: mojibake fixed (ftfy), spaces folded, cut; with `markup`, tags stripped and
    entities decoded (titles and excerpts are HTML-ish in scraped files; names are not)."""
    if not text.isascii() and _MOJIBAKE_HINT.search(text):
        text = _PARKED.sub(lambda m: chr(ord(m.group()) - 0xE000), text)
        text = ftfy.fix_text(text, _FTFY)
        text = _C1.sub("", text)  # C1 controls ftfy could not map to a character
    return cut(" ".join((strip_html(text) if markup else text).split()), limit)
