#!/usr/bin/env python3
"""Where the time of parsing one article file goes, on one core: the floor under a cold build or start.

    .venv/bin/python bench/parse_split.py [FOLDER] [--files N]

Reads N files of FOLDER (default: the generated 10,000-article corpus) into memory, then times
each step over all of them in turn, garbage collector off: splitting off the front matter,
yaml-rs alone, the checks that decide whether yaml-rs may be trusted with a document
(feedsvc.content.yamlload: needs_pyyaml and nesting_bound), and the whole of
feedsvc.content.files.load_bytes (those steps and the field rules). Prints µs per file.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # the feedsvc of this tree

from feedsvc.content import yamlload
from feedsvc.content.files import load_bytes
from feedsvc.content.frontmatter import decode, split_front_matter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=BENCH / "out" / "corpus" / "10000-seed1")
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args(argv)
    names = sorted(p for p in args.folder.iterdir() if p.is_file() and not p.name.startswith("."))[: args.files]
    if not names:
        raise SystemExit(f"no files in {args.folder}: generate the corpus with bench/gen_corpus.py")
    datas = [(path.read_bytes(), str(path)) for path in names]
    gc.disable()
    started = time.perf_counter()
    sources = [split_front_matter(decode(data, name), name)[0] for data, name in datas]
    split = time.perf_counter()
    for source in sources:
        yamlload.yaml_rs.loads(source, duplicate_key_policy=yamlload._LAST_WINS)
    parsed = time.perf_counter()
    for source in sources:
        yamlload.needs_pyyaml(source)
        yamlload.nesting_bound(source)
    checked = time.perf_counter()
    for data, name in datas:
        load_bytes(data, name)
    done = time.perf_counter()
    per = 1e6 / len(datas)
    print(f"{len(datas)} files: split {(split - started) * per:.0f} µs, yaml-rs {(parsed - split) * per:.0f} µs, "
          f"checks {(checked - parsed) * per:.0f} µs, load_bytes in all {(done - checked) * per:.0f} µs a file")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
