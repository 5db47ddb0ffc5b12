"""Parse YAML front matter safely and build only the fields feedsvc reads.

libyaml (C) composes the node graph; Python then constructs just the keys in a SPEC, so the
`secured` blob, AMP URLs and every unknown key are never even turned into Python objects.
Before that, one bounded walk over the graph refuses object-constructing tags
(`!!python/...`) and "billion laughs" alias bombs anywhere in the document.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# PyYAML's libyaml binding is about ten times faster than the pure-Python parser.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SafeLoader(_BaseLoader):
    """The safe loader with a memo of implicit tag resolution.

    libyaml parses in C but asks Python for each scalar's implicit tag (int? date? bool?),
    a chain of regular expressions; front matter repeats the same keys and values in every
    file, so remembering short answers halves the cost of composing a document.
    """

    _memo: dict = {}

    def descend_resolver(self, current_node, current_index) -> None:
        """No path resolvers are registered: skip PyYAML's bookkeeping for them."""

    def ascend_resolver(self) -> None:
        """No path resolvers are registered: skip PyYAML's bookkeeping for them."""

    def resolve(self, kind, value, implicit):
        """The tag of a node: a quoted or block scalar is a string; a short plain one comes from
        the memo when seen before."""
        if kind is not ScalarNode:  # no path resolvers: the default tags, as PyYAML gives them
            return MAP_TAG if kind is MappingNode else SEQ_TAG
        if not implicit[0]:  # not plain: no implicit int/date/bool (YAML 1.1 tag resolution)
            return STR_TAG
        if len(value) > 40:
            return super().resolve(kind, value, implicit)
        key = (value, implicit[1])
        tag = self._memo.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._memo) < 100_000:
                self._memo[key] = tag
        return tag


STR_TAG = "tag:yaml.org,2002:str"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
INT_TAG = "tag:yaml.org,2002:int"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# YAML 1.1 tags the safe constructor knows (https://yaml.org/type/); anything else is refused.
SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + name
    for name in ("null", "bool", "int", "float", "str", "binary", "timestamp", "omap", "pairs", "set", "seq", "map", "merge", "value")
)

Spec = dict[str, "Spec | None"]  # key -> how to build its value (None: all of it)


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


# The commonest scalars of front matter, built without PyYAML's Python constructors (a third of
# the time of building): decimal ints with no leading zero (YAML 1.1 reads "010" as octal) and
# UTC or offset timestamps in the one form datetime.fromisoformat reads exactly as PyYAML does.
_DECIMAL = re.compile(r"[-+]?[1-9][0-9]*|0")
_ISO_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|[+-][0-9]{2}:[0-9]{2})")


def build_scalar(loader: Any, node: ScalarNode) -> Any:
    """A scalar's value, as PyYAML's safe constructor gives it."""
    tag, value = node.tag, node.value
    if tag == STR_TAG:
        return value
    if tag == INT_TAG and _DECIMAL.fullmatch(value):
        return int(value)
    if tag == TIMESTAMP_TAG and _ISO_TIMESTAMP.fullmatch(value):
        return datetime.fromisoformat(value)
    return loader.construct_object(node, deep=True)


def build(loader: Any, node: Node, spec: Spec | None, merges: bool = True) -> Any:
    """Construct `node`, keeping only the keys `spec` names in mappings (and mappings in lists);
    `merges` False says the document holds no merge key (no "<<" and no "!" in its text)."""
    kind = type(node)
    if kind is ScalarNode:
        return build_scalar(loader, node)
    if kind is SequenceNode and (spec is not None or is_plain_list(node)):
        return [build(loader, item, spec, merges) for item in node.value]
    if spec is None:
        return loader.construct_object(node, deep=True)
    if merges and any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value):
        # Merge keys ("<<: *base") need PyYAML's flattening: build whole, then filter.
        full = loader.construct_object(node, deep=True)
        return {k: v for k, v in full.items() if k in spec}
    return build_mapping(loader, node, spec, merges)


def is_plain_list(node: SequenceNode) -> bool:
    """Whether a sequence is a plain list of scalars (topics): PyYAML builds it as a list of
    its scalars' values, as `build` does, and no alias in it can make it hold itself."""
    return node.tag == SEQ_TAG and all(type(item) is ScalarNode for item in node.value)


def build_mapping(loader: Any, node: MappingNode, spec: Spec, merges: bool) -> dict:
    """The keys of a mapping that `spec` names, built; a repeated key keeps its last value."""
    built = {}
    for key, value in node.value:
        if type(key) is not ScalarNode or (name := key.value) not in spec:
            continue
        if type(value) is ScalarNode:  # most values: built here, without a call of `build` each
            built[name] = build_scalar(loader, value)
        else:
            built[name] = build(loader, value, spec[name], merges)
    return built


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


def load_subset(source: str, spec: Spec, max_nodes: int) -> Any:
    """Parse one YAML document and build the parts of it that `spec` names."""
    if nesting_bound(source) > MAX_DEPTH:
        raise UnsafeYaml(f"front matter nests deeper than {MAX_DEPTH} levels: flatten it", None)
    loader = SafeLoader(source)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        # Explicit tags need "!" and aliases need "*" in the text: without both, nothing to check.
        if "!" in source or "*" in source:
            check_graph(root, max_nodes)
        if not isinstance(root, MappingNode):
            return loader.construct_document(root)
        return build(loader, root, spec, merges="<<" in source or "!" in source)
    finally:
        loader.dispose()
