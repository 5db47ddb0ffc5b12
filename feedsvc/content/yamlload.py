"""YAML documents to Python values, the values PyYAML's safe loader builds, in a tenth of its time.

yaml-rs (Rust; YAML 1.2's core schema) parses the front matter feedsvc meets about eight times
faster than PyYAML's libyaml binding, to equal values: quoted and plain text, decimal numbers,
true/false/null, ISO dates and timestamps, nested mappings and lists (tests/test_yamlload.py
compares the two on every corpus). Where the two differ, a document's text shows it, and such a
document is parsed by PyYAML's CSafeLoader, the reference:

* YAML 1.1 booleans `yes/no/on/off` (PyYAML: bool; yaml-rs: text), also as keys;
* numbers that are not plain decimals: `010` (1.1 octal 8; 1.2: 10), `0o10`, `0x1F`, `1_000`,
  `1:30` (1.1 sexagesimal 90), `1e3` (1.1: text; 1.2: a float), `.inf`, `08`, ...;
* timestamps outside the strict ISO form, and impossible ones (`2021-02-30`), which PyYAML
  refuses while yaml-rs keeps them as text;
* quoted or block scalars whose text is a date or a time (yaml-rs 0.1.6 makes `"2021-01-13"` a
  date, though a quoted scalar is text in YAML), and empty block scalars;
* tags (yaml-rs ignores them: it neither refuses nor constructs `!!python/...`), anchors and
  aliases, merge keys `<<`;
* several documents, directives, explicit and complex keys, flow mappings, and flow lists other
  than a one-line list of plain words, numbers and quoted text;
* tabs, CR, BOM, line and paragraph separators and control characters.

When yaml-rs refuses a document, PyYAML parses it too: it raises with the line feedsvc reports,
or gives the value it has for it. A repeated key keeps its last value, as in PyYAML.

Before any parser sees a document, feedsvc refuses one nested deeper than MAX_DEPTH (every
parser has a limit of its own, or none: yaml-rs 0.1.6 overflows its stack at 100,000 levels of
"- "), and, in a document with "!" or "*", PyYAML's composed graph is checked for tags other
than YAML's own and for aliases that expand past a node limit ("billion laughs"). Pure core.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
import yaml_rs
from yaml.nodes import MappingNode, Node, SequenceNode

# PyYAML's libyaml binding, about ten times faster than its pure-Python parser where it is built.
_CSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A real article has a few hundred values; far more means a pathological or hostile file.
MAX_NODES = 20_000

# feedsvc's own bound on nesting. A real article nests five levels (root, related, a link, its
# images, an image); every YAML library has a limit of its own, or none (libyaml 0.2.5 overflows
# the C stack, SIGSEGV, at about 100,000 levels; later releases refuse 1,000; PyYAML's pure-Python
# parser recurses ~3 frames a level). Refusing deep documents before any parser sees them makes
# the result the same whatever parser, and whatever release of it, is installed.
MAX_DEPTH = 100
# Over "\n" + text ("\n" as a literal prefix is searched for far faster than a MULTILINE "^"):
# each line's indentation, and each run of compact block indicators that starts a line.
_INDENTS = re.compile(r"\n( *)(?=[^ \n])")
_COMPACT_RUN = re.compile(r"\n *((?:[-?](?: +|(?=\n)|$))+)")


def flow_depth(source: str) -> int:
    """The deepest nesting of "[" and "{" (quotes ignored: an over-estimate, which is safe)."""
    depth = deepest = 0
    for char in source:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def nesting_bound(source: str) -> int:
    """An upper bound of the nesting depth of a YAML document, from its text alone (no parser).

    A block node nests in its parent either on a later line with more indentation (or, for a
    sequence under a mapping key, the same), or on the same line after a compact indicator
    ("- - x", "? x"). So a chain of nested block nodes visits at most two lines per distinct
    indentation width, each adding at most its run of compact indicators and a key; flow
    collections ("[", "{") add at most their bracket depth.
    """
    lines = "\n" + source
    widths = len(set(_INDENTS.findall(lines)))
    run = max((line.count("-") + line.count("?") for line in _COMPACT_RUN.findall(lines)), default=0)
    brackets = source.count("[") + source.count("{")
    return 2 * widths * (run + 2) + (flow_depth(source) if brackets > MAX_DEPTH // 2 else brackets)


# YAML 1.1 tags the safe constructor knows (https://yaml.org/type/); anything else is refused.
SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + name
    for name in (
        "null",
        "bool",
        "int",
        "float",
        "str",
        "binary",
        "timestamp",
        "omap",
        "pairs",
        "set",
        "seq",
        "map",
        "merge",
        "value",
    )
)


class UnsafeYaml(ValueError):
    """The document holds a disallowed tag or expands past the node limit."""

    def __init__(self, message: str, node: Node | None) -> None:
        super().__init__(message)
        self.line = node.start_mark.line if node is not None and node.start_mark is not None else None  # 0-based


def check_graph(root: Node, max_nodes: int) -> None:
    """Refuse unknown tags and documents that expand (through aliases) to over `max_nodes` nodes."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > max_nodes:
            raise UnsafeYaml(f"front matter expands to over {max_nodes} values (YAML aliases?): simplify it", node)
        if node.tag not in SAFE_TAGS:
            raise UnsafeYaml(f"YAML tag {node.tag[:60]!r} is not allowed: remove it (only plain values are read)", node)
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


_LAST_WINS = yaml_rs.DuplicateKeyPolicy.LastWins

# The strict forms both parsers read alike (checked value by value in differential.py): decimal
# integers of at most 18 digits (Python refuses int() of over 4,300 digits, and PyYAML with it) and
# decimal fractions, dates whose day exists in every year, and timestamps "date[T ]hh:mm:ss[.f][zone]".
_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_DATE = rf"(?!0000)[0-9]{{4}}-{_DAY}"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_ZONE = r"(?:Z|z|[-+](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_AGREED = rf"(?:{_DATE}(?:[Tt ]{_TIME}{_ZONE}?)?|[-+]?(?:0|[1-9][0-9]{{0,17}}+)(?:\.[0-9]{{1,17}}+)?)"
# Where a plain scalar ends: end of line, a comment, a flow indicator, or ": " (it was a key).
_END = r" *(?:$|#|[,\]}]|:(?: |$))"
# A plain scalar that may be a number, a date or a time to either parser (made only of digits,
# signs, ".", "_", ":", spaces and the letters of hex, exponents, ".inf", ".nan", "T" and "Z") and is
# not in the strict forms: "9to5Google" and "2021 review" are text to both.
_NUMBER_LIKE = rf"(?=[-+.:_0-9a-fA-FxXoOtTzZiInN ]*{_END})(?!{_AGREED}{_END})"
_BOOL_1_1 = r"(?:[Yy]es|YES|[Nn]o|NO|[Oo]n|ON|[Oo]ff|OFF)"
# What may follow where a node starts: a number-like scalar, a YAML 1.1 boolean, an indicator
# (tag, anchor, alias, directive, reserved, "=", explicit key, block scalar) or a merge key.
_NODE = rf"(?=[-+.0-9_YyNnOo!&*%@`=?:|><])(?:(?=[-+.0-9_]){_NUMBER_LIKE}|{_BOOL_1_1}{_END}|[!&*%@`=?:|>]|<<)"
# Each pattern starts with one literal character, which `re` finds by a fast scan (an alternation
# of such patterns, or a character class first, is scanned character by character: 3-10x slower).
_CHECKS = (
    # a node after ": " or "- " (tabs are refused below, so a space is the only separator)
    re.compile(rf": +{_NODE}", re.MULTILINE),
    re.compile(rf"- +{_NODE}", re.MULTILINE),
    # a node at the start of a line (a key, a line of a multi-line plain scalar; "- " starts a block
    # list item, checked above), and "---", "..."; searched in "\n" + text
    re.compile(rf"\n *(?!- |-$){_NODE}", re.MULTILINE),
    # a quoted scalar that starts as a date ("2021-") or a time ("12:"), or with escapes
    re.compile(r'"(?=[- :0-9\\]) *(?:[0-9]{4}-|[0-9]{2}:|[-:0-9]{0,10}\\)'),
    re.compile(r"'(?=[ 0-9]) *(?:[0-9]{4}-|[0-9]{2}:)"),
)
# In a document with "[" or "{": a flow mapping, a flow list that is not a one-line list of plain
# words, numbers and quoted text, or a risky node after "[" or ",".
_ITEM = r"(?:\"[^\"\\\n]*\"|'[^'\n]*'|[^\s\[\]{},:#?&*!|>'\"%@`][^\n\[\]{},:#]*?)"
_SIMPLE_LIST = rf" *(?:{_ITEM} *(?:, *{_ITEM} *)*,? *)?\] *(?:#.*)?$"
_FLOW = re.compile(rf"\{{|\[(?!{_SIMPLE_LIST})|[\[,] *{_NODE}", re.MULTILINE)
# Every byte but tab, CR and the other C0 controls, and DEL (PyYAML's reader refuses most; tabs
# and CR take other paths in the two scanners); in UTF-8 a byte below 0x80 is always a character.
_ALLOWED_BYTES = b"\n" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
# Characters beyond ASCII that PyYAML refuses or reads as line breaks: C1 controls (NEL), LS, PS,
# BOM, U+FFFE/U+FFFF, lone surrogates. Their UTF-8 starts with C2, E2, EF or ED.
_BAD_NON_ASCII = re.compile("[\x80-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def needs_pyyaml(source: str) -> bool:
    """Whether the text holds anything yaml-rs may read differently from PyYAML's safe loader."""
    utf8 = source.encode("utf-8", "surrogatepass")
    if utf8.translate(None, _ALLOWED_BYTES):
        return True
    if (
        not source.isascii()
        and (b"\xc2" in utf8 or b"\xe2" in utf8 or b"\xef" in utf8 or b"\xed" in utf8)
        and _BAD_NON_ASCII.search(source)
    ):
        return True
    lines = "\n" + source
    for check in _CHECKS:
        if check.search(lines):
            return True
    # Deep nesting, which overflows yaml-rs's stack, is not checked here: load() refuses a
    # document whose nesting_bound passes MAX_DEPTH before it asks.
    return ("[" in source or "{" in source) and _FLOW.search(source) is not None


def load(source: str, max_nodes: int = MAX_NODES) -> Any:
    """One YAML document's value, equal to PyYAML's `yaml.load(source, CSafeLoader)`; UnsafeYaml
    for a document nested deeper than MAX_DEPTH, expanding past `max_nodes` values through
    aliases, or holding a tag other than YAML's own; yaml.YAMLError for invalid YAML."""
    if nesting_bound(source) > MAX_DEPTH:
        raise UnsafeYaml(f"front matter nests deeper than {MAX_DEPTH} levels: flatten it", None)
    if not needs_pyyaml(source):
        try:
            return yaml_rs.loads(source, duplicate_key_policy=_LAST_WINS)
        except yaml_rs.YAMLDecodeError:
            pass  # PyYAML's error follows, with the line feedsvc reports (or its value, where it has one)
    # Tags need "!" and aliases "*" in the text: without either, nothing to check in the graph.
    if "!" in source or "*" in source:
        root = yaml.compose(source, Loader=_CSafeLoader)
        if root is not None:
            check_graph(root, max_nodes)
    return yaml.load(source, Loader=_CSafeLoader)
