"""feedsvc.content.yamlload: the values PyYAML's safe loader builds (the reference), whichever parser
parsed the document, on every corpus there is; and no hostile document can crash or hang a process."""

from __future__ import annotations

import datetime
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import CORPUS, PROJECT, SEEDS
from hypothesis import given, settings
from hypothesis import strategies as st

from feedsvc.content.frontmatter import decode, split_front_matter
from feedsvc.content.yamlload import MAX_DEPTH, MAX_NODES, UnsafeYaml, load, needs_pyyaml

REFERENCE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def typed(value):
    """A value with the type of every part spelled out (1 == True == 1.0 in Python), and each
    datetime's offset: equal only when the parsers built the same thing."""
    if isinstance(value, dict):
        return {"dict": [(typed(k), typed(v)) for k, v in value.items()]}
    if isinstance(value, (list, tuple, set)):
        return {type(value).__name__: [typed(v) for v in value]}
    if isinstance(value, datetime.datetime):
        return ("datetime", value.isoformat(), str(value.utcoffset()))
    return (type(value).__name__, repr(value))


def outcome(parse, text: str):
    """What parsing `text` gives: its typed value, or that it was refused."""
    try:
        return typed(parse(text))
    except (yaml.YAMLError, UnsafeYaml, ValueError, TypeError, OverflowError, RecursionError):
        return "refused"


def reference(text: str):
    return yaml.load(text, Loader=REFERENCE)


def assert_same(text: str) -> None:
    expected = outcome(reference, text)
    got = outcome(load, text)
    # feedsvc refuses more than PyYAML (deep nesting, tags, alias bombs), never less.
    assert got == expected or got == "refused", text[:300]


def front_matters(folder: Path) -> list[str]:
    texts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            source, _ = split_front_matter(decode(path.read_bytes(), path.name), path.name)
            texts.append(source)
    return texts


def generated_corpus(folder: Path, count: int) -> list[str]:
    """`count` front matters from bench/gen_corpus.py (the benchmarks' corpus: real fields, long related lists)."""
    spec = importlib.util.spec_from_file_location("gen_corpus", PROJECT / "bench" / "gen_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(folder, count, seed=3)
    return front_matters(folder)


@pytest.mark.parametrize("corpus", ["seeds", "corpus-sample"])
def test_real_front_matter_is_parsed_as_pyyaml_parses_it_and_mostly_without_it(corpus):
    texts = front_matters(SEEDS if corpus == "seeds" else CORPUS)
    for text in texts:
        assert outcome(load, text) == outcome(reference, text), text[:300]
    # The fast parser is the common path: PyYAML is for the odd document only.
    assert sum(map(needs_pyyaml, texts)) <= len(texts) // 10


def test_generated_corpus_is_parsed_as_pyyaml_parses_it(tmp_path):
    texts = generated_corpus(tmp_path, 400)
    for text in texts:
        assert outcome(load, text) == outcome(reference, text), text[:300]
    assert not any(map(needs_pyyaml, texts))


# Plain scalars that YAML 1.1 (PyYAML) and 1.2 (yaml-rs) read differently, or that are odd.
SCALARS = [
    "yes", "No", "ON", "off", "y", "n", "true", "False", "~", "null", "", "0", "-0", "+12", "010", "0o10", "0x1F",
    "0b101", "1_000", "1:30", "190:20:30", "08", "123456789012345678901234567890", "1.5", "1.", ".5", "1e3",
    "1.0e+3", ".inf", "-.Inf", ".nan", "inf", "1,000", "2021-01-13T23:56:00Z", "2021-01-13t23:56:00z",
    "2021-01-13 23:56:00+00:00", "2021-01-13T23:56:00+05:30", "2021-01-13T23:56:00", "2021-01-13T23:56:00.123456789Z",
    "2021-01-13T23:56:00 Z", "2021-01-13 23:56:00 +05", "2021-01-13T1:02:03Z", "2021-1-3", "2021-01-13", "2021-02-29",
    "2021-02-30", "2021-13-01", "2021-01-13T24:00:00Z", "2021-01-13T23:56:00+24:00", "0000-01-01", "12:30:45", "<<",
    "=", "-", "?", "Computer Vision", "abc7.com", "https://example.com/a?b=c#d", "9to5Google", "2021 review",
]  # fmt: skip
SHAPES = {
    "value": "title: t\nfield: {}\n",
    "list": "topics: [a, {}, b]\n",
    "block-list": "topics:\n  - {}\n",
    "key": "{}: v\nother: w\n",
    "double-quoted": 'title: "{}"\n',
    "single-quoted": "title: '{}'\n",
    "literal": "excerpt: |\n  {}\n",
    "folded": "excerpt: >-\n  {}\n",
}
STRUCTURES = [
    "title: a\ntitle: b\n", "a: &x 1\nb: *x\n", "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n", "a: !!str 1\n",
    "a: !!binary aGk=\n", "a: !!set {x, y}\n", "a: !!omap [x: 1]\n", "a: !!python/object:os.system x\n",
    "a: !custom x\n", "%YAML 1.1\n---\na: 1\n", "a: 1\n---\nb: 2\n", "a: 1\n...\n", "? complex\n: v\n",
    "? [a, b]\n: v\n", "a: {x: 1, y: [2, 3]}\n", "a: [x: 1]\n", "a: [?x]\n", "a: [-]\n", "a: [http://x:]\n",
    "a:\tb\n", "a: b\r\nc: d\n", "\ufeffa: 1\n", "a: b\u2028c\n", "a: 'x\u0085y'\n", "a: \"\\x01\"\n",
    "- a\n- b\n", "just text\n", "", "# only a comment\n", "a:\n  - b: 1\n    c: [2, 3]\n", "a: |\n\nb: 1\n",
    "a: >\n  x\n\n  y\n", "a: 'it''s'\n", "a: \"\\u00e9\"\n", "related:\n- title: x\n  webUrl: https://e.x/\n",
    "a: [unclosed\n", "a: 'unclosed\n", "  bad: indent: here\n", "a: b: c\n", "[a, b]: c\n",
]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
def test_odd_scalars_are_built_as_pyyaml_builds_them(shape):
    for scalar in SCALARS:
        assert_same(SHAPES[shape].format(scalar))


@pytest.mark.parametrize("text", STRUCTURES, ids=range(len(STRUCTURES)))
def test_odd_structures_are_built_as_pyyaml_builds_them(text):
    assert_same(text)


LINE = st.one_of(
    st.sampled_from(["title: t", "topics:", "- a", "  - b", "related:", "  - title: x", "    webUrl: w", "---", "..."]),
    st.builds("{}: {}".format, st.sampled_from(["a", "b", "yes", "1", "<<"]), st.sampled_from(SCALARS)),
    st.builds("- {}".format, st.sampled_from(SCALARS)),
    st.builds("x: [{}, {}]".format, st.sampled_from(SCALARS), st.sampled_from(SCALARS)),
    st.text(alphabet=" -:#'\"[]{},&*!|>?abc0123456789\t", max_size=12),
)


@given(st.lists(LINE, max_size=8))
@settings(max_examples=300, deadline=None)
def test_random_documents_are_built_as_pyyaml_builds_them(lines):
    assert_same("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nests deeper than {MAX_DEPTH} levels"),
        ("a: !!python/object/apply:os.system [echo]\n", "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
        ("a: !custom x\n", "YAML tag '!custom' is not allowed"),
    ],
    ids=["deep", "python-tag", "custom-tag"],
)
def test_what_feedsvc_refuses_itself(text, message):
    with pytest.raises(UnsafeYaml, match=message):
        load(text)


def test_an_alias_bomb_is_refused_by_feedsvcs_node_limit():
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 9)]
    with pytest.raises(UnsafeYaml, match=f"expands to over {MAX_NODES} values"):
        load("\n".join(lines) + "\n")


# Each runs in a child process: a crash in native code (a stack overflow is a SIGSEGV, not an
# exception) would take the whole worker down, and a hang would hold its reload thread.
HOSTILE = {
    "flow-100k": "a: " + "[" * 100_000 + "]" * 100_000,
    "flow-unclosed-100k": "a: " + "[" * 100_000,
    "compact-100k": "a:\n" + "- " * 100_000 + "x",
    "questions-100k": "? " * 100_000 + "x",
    "indented-1000": "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 1000)) + " " * 1000 + "x",
    "mapping-keys-flow-10k": "a: " + "{" * 10_000 + "}" * 10_000,
    "alias-bomb": "\n".join(['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
                            + [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 12)]),
    "python-tag": "a: !!python/object/apply:os.system ['touch /tmp/feedsvc-owned']",
    "huge-scalar": "title: " + "x" * 900_000,
    "huge-quoted": 'title: "' + "\\u00e9" * 150_000 + '"',
    "many-keys": "".join(f"k{i}: {i}\n" for i in range(50_000)),
    "control-characters": "a: \x00\x01\x1b\x7f\n",
    "surrogates": "a: \ud800\n",
}  # fmt: skip
CHILD = textwrap.dedent("""
    import sys
    from feedsvc.content.yamlload import load
    text = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    try:
        load(text)
        print("value")
    except Exception as exc:
        print("refused", type(exc).__name__)
""")


@pytest.mark.slow
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_document_neither_crashes_nor_hangs_the_process(name):
    done = subprocess.run([sys.executable, "-c", CHILD], input=HOSTILE[name].encode("utf-8", "surrogatepass"),
                          capture_output=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert done.stdout.decode().startswith(("value", "refused")), done.stdout
    assert not Path("/tmp/feedsvc-owned").exists()


def test_the_fast_parser_is_not_asked_about_what_it_reads_differently():
    # Every construct the module's docstring lists goes to PyYAML.
    for text in ["a: yes\n", "a: 010\n", "a: '2021-01-13'\n", "a: !!str x\n", "a: &x 1\n", "a: {b: 1}\n", "a:\tb\n"]:
        assert needs_pyyaml(text), text
    assert not needs_pyyaml(
        "title: Plain text\ntopics: [AI, Computer Vision]\npublishedDateTime: 2021-01-13T23:56:00Z\n"
    )
