"""The YAML front matter of an article file: found between its `---` lines, decoded, and parsed
safely. Pure core: no Flask, no feedgen."""

from __future__ import annotations

import re

import yaml

from feedsvc.content.text import prepare_for_yaml
from feedsvc.content.yamlload import MAX_NODES, UnsafeYaml, load
from feedsvc.errors import ArticleError


def split_front_matter(text: str, path: str) -> tuple[str, int]:
    """Return the YAML between the opening and closing `---` lines, and its first line number."""
    first_end = text.find("\n")
    if (text if first_end < 0 else text[:first_end]).rstrip() != "---":
        raise ArticleError(path, "no front matter: the first line must be '---'", line=1)
    at = first_end
    while at >= 0:  # each line that starts with "---" (str.find: no split of the whole file)
        at = text.find("\n---", at)
        if at < 0:
            break
        line_end = text.find("\n", at + 1)
        if text[at + 1 : None if line_end < 0 else line_end].rstrip() == "---":
            return text[first_end + 1 : max(at, first_end + 1)], 2
        at += 1
    raise ArticleError(path, "front matter is not closed: add a '---' line after the last field", line=1)


def decode(data: bytes, path: str) -> str:
    """Decode UTF-8 (a BOM is allowed) and fold CRLF/CR line ends to LF."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(path, f"not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return prepare_for_yaml(text)


def parse_yaml(source: str, path: str, first_line: int) -> dict:
    """Parse the front matter as PyYAML's safe loader would (feedsvc.content.yamlload); the root
    must be a mapping. Nothing in it is executed; unknown keys (`secured` first) are never read."""
    try:
        data = load(source, MAX_NODES)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + first_line if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ArticleError(path, f"invalid YAML: {reason}", line=line) from None
    except UnsafeYaml as exc:
        raise ArticleError(path, str(exc), line=None if exc.line is None else exc.line + first_line) from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for values it cannot build: "2021-02-30", "!!int abc".
        raise ArticleError(path, f"invalid YAML value: {exc}; quote the value or correct it") from None
    if not isinstance(data, dict):
        raise ArticleError(path, "front matter must be a mapping of fields (title: ..., webUrl: ...)")
    return data


def line_of_key(source: str, key: str, first_line: int) -> int | None:
    """The file line of a top-level `key:` in the front matter, for `PATH:LINE` messages (the
    last one when the key is repeated: that is the value YAML keeps)."""
    matches = list(re.finditer(rf"^{re.escape(key)}\s*:", source, re.MULTILINE))
    return source.count("\n", 0, matches[-1].start()) + first_line if matches else None
