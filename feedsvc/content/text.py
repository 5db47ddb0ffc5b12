"""Repair text before and after YAML parsing, so that odd characters are fixed, not refused.

YAML 1.1 (section 5.1) and XML 1.0 (section 2.2) forbid most control characters; scrapers leave
them, and mojibake such as "â€™", in real files. Pure core: no Flask.
"""

from __future__ import annotations

import html
import re
from functools import cache

# C0 controls but tab/LF/CR, DEL, and the noncharacters U+FFFE/U+FFFF: removed before parsing.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
# C1 controls (U+0080-U+009F) are forbidden by YAML too, but ftfy needs them to undo mojibake
# ("â€\x9d" is a mis-decoded right quote): park them in the Private Use Area while YAML parses.
_C1 = re.compile("[\x80-\x9f]")
_PARKED = re.compile("[\ue080-\ue09f]")
ELLIPSIS = "…"


_SUSPECT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
# Bidirectional embeddings, overrides and isolates (Unicode UAX #9 sections 2.1-2.4: LRE, RLE, PDF,
# LRO, RLO, LRI, RLI, FSI, PDI) reorder every character up to their terminator, or to the end of the
# paragraph when there is none: "\u202egnp.exe" shows as "exe.png", and one left open in a title
# reverses what a reader shows after it ("Trojan Source", CVE-2021-42574). They are dropped from
# every text field, balanced or not: a balanced override still disguises the text inside it. The
# marks (LRM, RLM, ALM, UAX #9 section 2.6) have no scope, only a direction, and real right-to-left
# text needs them: they stay.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
# Unicode's noncharacters (U+FDD0-U+FDEF and the last two code points of every plane) are for a
# program's internal use, never for interchange (Unicode 15.0 section 23.7); HTML parsers call
# them a parse error (the WHATWG HTML standard's "noncharacter-in-input-stream"), which the W3C feed
# validator reports as "Invalid HTML" in a description.
NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    chr(plane | 0xFFFE) + chr(plane | 0xFFFF) for plane in range(0, 0x110000, 0x10000)
)
# What text fields never hold: _SUSPECT's characters, the noncharacters and the bidirectional controls.
_DROPPED = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{NONCHARACTERS}{BIDI_CONTROLS}]")
# ftfy is only needed where mojibake can be: Latin-1 letters such as "Ã" and "â" start every
# UTF-8 sequence mis-decoded as Latin-1 or Windows-1252 (and parked C1 controls).
_MOJIBAKE_HINT = re.compile("[\u00a0-\u00ff\ue080-\ue09f\ufffd]")


@cache
def _fixer():
    """ftfy and its settings, imported when first needed: most folders never need it, and the
    import is a tenth of the time a warm start takes."""
    import ftfy

    settings = ftfy.TextFixerConfig(uncurl_quotes=False, fix_character_width=False, unescape_html=False, explain=False)
    return lambda text: ftfy.fix_text(text, settings)


# Every byte but those of C0 controls (tab and line ends aside) and DEL: in UTF-8 a byte below
# 0x80 is always an ASCII character, never part of a longer sequence.
_ALLOWED_BYTES = b"\t\n\r" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))


def _has_suspect(text: str) -> bool:
    """Whether `text` holds a character `_SUSPECT` matches, found in its UTF-8 bytes: a whole file
    is tested before parsing, and bytes.translate and `in` scan it about four times faster."""
    utf8 = text.encode("utf-8", "surrogatepass")
    if utf8.translate(None, _ALLOWED_BYTES):
        return True  # a C0 control or DEL
    # The others, U+0080-U+009F and U+FFFE/U+FFFF, encode as C2 80-9F and EF BF BE/BF; C2 and EF
    # only start a sequence, so text with neither byte has none (text with one is searched).
    return (b"\xc2" in utf8 or b"\xef" in utf8) and _SUSPECT.search(text) is not None


def prepare_for_yaml(text: str) -> str:
    """Drop characters no YAML or XML document may hold; park C1 controls for `plain_text`."""
    if not _has_suspect(text):
        return text
    text = _FORBIDDEN.sub("", text)
    return _C1.sub(lambda m: chr(ord(m.group()) + 0xE000), text)


# Linear-time markup removal. html.parser is quadratic on hostile input ("<a <a <a ...": 8,000
# characters took 0.8 s), and a regular expression cannot both honour quoted ">" and stay
# linear, so tags are skipped by a scanner that never looks at a character twice.
_TAG_START = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*|!|\?)")
_TAG_STOP = re.compile(r"""[>"']""")
_RAW_TEXT_OPEN = re.compile(r"<(script|style|template)\b[^<>]*>", re.IGNORECASE)
_BREAKS = {"br", "p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}


def _tag_end(text: str, position: int) -> int:
    """The index just past the ">" closing a tag whose name ends at `position` (quoted values may
    hold ">"), or -1 when the tag never closes."""
    while stop := _TAG_STOP.search(text, position):
        if stop.group() == ">":
            return stop.end()
        closing = text.find(stop.group(), stop.end())
        if closing < 0:
            return -1
        position = closing + 1
    return -1


def _drop_tags(text: str) -> str:
    """Remove every tag (a line-breaking one leaves a space); an unclosed tag swallows the rest."""
    parts, position = [], 0
    while tag := _TAG_START.search(text, position):  # "<3", "a < b" are text, not tags
        parts.append(text[position : tag.start()])
        end = _tag_end(text, tag.end())
        if end < 0:
            return "".join(parts)
        parts.append(" " if tag.group(2).lower() in _BREAKS else "")
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _drop_comments(text: str) -> str:
    """Remove <!-- comments --> (which may hold ">" or tags); an unclosed one swallows the rest."""
    parts, position = [], 0
    while (start := text.find("<!--", position)) >= 0:
        parts.append(text[position:start])
        end = text.find("-->", start + 4)
        if end < 0:
            return "".join(parts)
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


def _drop_raw_text(text: str) -> str:
    """Remove script/style/template elements with their content; an unclosed one swallows the rest."""
    parts, position, lowered = [], 0, text.lower()
    while match := _RAW_TEXT_OPEN.search(text, position):
        parts.append(text[position : match.start()])
        closing = lowered.find(f"</{match.group(1).lower()}", match.end())
        if closing < 0:
            return "".join(parts)
        end = text.find(">", closing)
        position = len(text) if end < 0 else end + 1
    parts.append(text[position:])
    return "".join(parts)


def strip_html(text: str) -> str:
    """The plain text of a string that may hold HTML tags or entities."""
    if "<" in text:
        text = _drop_tags(_drop_raw_text(_drop_comments(text)))
    return html.unescape(text) if "&" in text else text


def html_text(text: str) -> str:
    """Plain text as HTML that shows it as written ("&", "<" and ">" escaped), for a field that
    readers render as HTML: "<script>" in a title is then text, never an element."""
    return html.escape(text, quote=False)


def cut(text: str, limit: int | None) -> str:
    """Cut text to at most `limit` characters at a word boundary, marking the cut with an ellipsis."""
    if limit is None or len(text) <= limit:
        return text
    if limit < 2:
        return text[: max(limit, 0)]
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:  # a word boundary not too far back; else cut the long word
        head = head[:space]
    return head.rstrip(" ,;:.-") + ELLIPSIS


def _is_folded(text: str) -> bool:
    """Whether `text` is already what folding and dropping controls make of it. Safe because
    str.isprintable is false for every control (Unicode category Cc), noncharacter (Cn) and
    separator (Z*) but the ASCII space, and str.split's white space is all among those."""
    return text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " "


def plain_text(text: str, limit: int | None = None, markup: bool = True) -> str:
    """Repaired text: mojibake fixed (ftfy), controls and bidirectional overrides dropped, spaces
    folded, cut; with `markup`, tags stripped and entities decoded (titles and excerpts are HTML-ish
    in scraped files; names are not). The result is plain text: every writer escapes it for its format."""
    if not text.isascii() and _MOJIBAKE_HINT.search(text):
        text = _PARKED.sub(lambda m: chr(ord(m.group()) - 0xE000), text)
        text = _fixer()(text)
    if markup:
        text = strip_html(text)
    if _is_folded(text):
        return cut(text, limit)
    if _DROPPED.search(text):
        # YAML escapes ("\x01", "\e") and character references ("&#x81;", "&#x202E;") put controls
        # back after parsing; XML 1.0 forbids the C0 ones, and bidirectional ones disguise text.
        text = _DROPPED.sub("", text)
    return cut(" ".join(text.split()), limit)
