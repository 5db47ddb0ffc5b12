#!/usr/bin/env python3
"""Draw bench/speed.png from bench/out/results.json (written by bench/speed.py).

    .venv/bin/python bench/plot.py [RESULTS] [--out PNG]

Left: time from process start to the first feed against the number of articles (cold, warm,
and the sequential CSafeLoader baseline), log-log, with a dotted line of slope 1 (linear growth).
Right: peak RSS through load, serve and reload against the number of articles, with the 1 GB goal
Needs matplotlib (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

BENCH = Path(__file__).resolve().parent
STYLE = {
    "baseline": {
        "label": "baseline: sequential CSafeLoader load",
        "color": "#777777",
        "marker": "s",
        "linestyle": "--",
    },
    "cold": {"label": "feedsvc cold (no parse cache)", "color": "#1f77b4", "marker": "o", "linestyle": "-"},
    "warm": {"label": "feedsvc warm (parse cache)", "color": "#2ca02c", "marker": "^", "linestyle": "-"},
}


def count_label(value: float, _position=None) -> str:
    return f"{value / 1000:g}k"


def plot(results: dict, out: Path) -> None:
    scale = results["scale"]
    sizes = scale["sizes"]
    counts = [s["articles"] for s in sizes]
    machine = results.get("machine", {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)

    for kind in ("baseline", "cold", "warm"):
        times = [s["median_s"][kind] for s in sizes]
        per_article = " / ".join(f"{t / c * 1000:.2f}" for t, c in zip(times, counts))
        left.plot(counts, times, **(STYLE[kind] | {"label": f"{STYLE[kind]['label']}\n    ms per article: {per_article}"}),
                  linewidth=2, markersize=7)  # fmt: skip
        left.annotate(f"{times[-1]:.1f} s", (counts[-1], times[-1]), textcoords="offset points",
                      xytext=(7, {"baseline": -10, "cold": 3, "warm": -3}[kind]), fontsize=9, color=STYLE[kind]["color"])  # fmt: skip
    first = sizes[0]["median_s"]["baseline"]
    left.plot(counts, [first * c / counts[0] for c in counts], color="#bbbbbb", linestyle=":", linewidth=1,
              label="linear growth from the 1k baseline")  # fmt: skip
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("articles (files)")
    left.set_ylabel("process start to first feed body, s (median)")
    left.set_title("Time to first feed")
    left.xaxis.set_major_formatter(FuncFormatter(count_label))
    left.set_xticks(counts)
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8, loc="upper left")
    left.set_xlim(counts[0] / 1.6, counts[-1] * 2.2)

    for kind in ("baseline", "cold", "warm"):
        peaks = [s["peak_rss_mib"][kind] * 2**20 / 1e6 for s in sizes]
        label = STYLE[kind]["label"] + ("" if kind == "baseline" else ": load, serve, reload")
        label += "\n    MB: " + " / ".join(f"{p:.0f}" for p in peaks)
        right.plot(counts, peaks, **(STYLE[kind] | {"label": label}), linewidth=2, markersize=7)
    if all(s.get("tree_peak_rss_mib_sampled") for s in sizes):
        tree = [s["tree_peak_rss_mib_sampled"]["cold"] * 2**20 / 1e6 for s in sizes]
        right.plot(counts, tree, color=STYLE["cold"]["color"], linestyle=":", marker="o", markerfacecolor="none",
                   linewidth=1.5, label="feedsvc cold, whole process tree (parse pool too,\n    RSS summed) MB: "
                   + " / ".join(f"{t:.0f}" for t in tree))  # fmt: skip
    right.axhline(1000, color="#d62728", linestyle="--", linewidth=1.5, label="goal: 1 GB")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("articles (files)")
    right.set_ylabel("peak RSS, MB (log scale)")
    right.set_title("Peak memory (the process; 1 GB goal in red)")
    right.xaxis.set_major_formatter(FuncFormatter(count_label))
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    right.set_xticks(counts)
    right.set_ylim(20, 2000)
    right.set_xlim(counts[0] / 1.6, counts[-1] * 2.2)
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8, loc="upper left")

    source = results.get("part_info", {}).get("scale", {}).get("feedsvc_source", "").split(" ")[0]
    fig.suptitle(f"feedsvc {source} start-up and memory vs corpus size ({machine.get('cores', '?')} cores, "
                 f"Python {machine.get('python', '?')}; {results.get('when', '')[:10]})", fontsize=11)  # fmt: skip
    fig.savefig(out, dpi=110)
    print(f"written: {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=BENCH / "out" / "results.json")
    parser.add_argument("--out", type=Path, default=BENCH / "speed.png")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if "scale" not in results:
        parser.error(f"{args.results} has no 'scale' part: run bench/speed.py (with scale) first")
    plot(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
