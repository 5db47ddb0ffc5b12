#!/usr/bin/env python3
"""Draw bench/service.png from bench/out/service.json (written by bench/service.py).

    .venv/bin/python bench/plot_service.py [RESULTS] [--out PNG]

One figure: a bar per row, its ratio to the peer measured in the same run (log scale: 1 = as fast
or as small as the peer), with the row's goal as a line across its bar. Times and memory must stay
under their line, requests/s over it. A goal set for another size than the one measured (a quick
run) is drawn dotted and grey, and the bar is not judged by it. A hatched bar is a floor: the same
measure of what the row cannot do better than (reading the files alone, the server answering from
constants), so a floor on the wrong side of the goal means the goal is out of reach. Needs
matplotlib (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

BENCH = Path(__file__).resolve().parent
COLORS = {True: "#2ca02c", False: "#d62728", None: "#9e9e9e"}  # pass, fail, not judged at this size
PEERS = {"build": "Hugo", "rebuild": "Hugo", "start": "CSafeLoader load", "memory": "list of front matters",
         "serve": "nginx static"}  # fmt: skip


def peer_kind(ident: str) -> str:
    """The part a row belongs to ("build", "serve", ...); a floor row's is the part it bounds."""
    parts = ident.split("_")
    if parts[0] != "floor":
        return parts[0]
    return "serve" if parts[1] == "nolog" else parts[1]


def others_cpu(results: dict) -> str:
    """The range of the other processes' CPU share sampled before the rounds (how quiet the machine was)."""
    shares = [x for part in ("start", "serve") for x in (results.get(part) or {}).get("others_cpu", [])]
    shares += [x for run in results.get("build", []) for x in run.get("others_cpu", [])]
    return f"{min(shares):.0%}-{max(shares):.0%}" if shares else "?"


def plot(results: dict, out: Path) -> None:
    """Bars of ratios with their goals, one figure."""
    rows = results["rows"]
    if not rows:
        raise SystemExit("no rows in the results: run bench/service.py first")
    fig, ax = plt.subplots(figsize=(max(8, 1.15 * len(rows) + 2), 5.5), constrained_layout=True)
    positions = range(len(rows))
    ratios = [r["ratio"] for r in rows]
    floors = [r["id"].startswith("floor") for r in rows]
    ax.bar(positions, ratios, width=0.6, color=[COLORS[r["pass"]] for r in rows], edgecolor="black", linewidth=0.5,
           hatch=["//" if floor else "" for floor in floors], alpha=0.85)  # fmt: skip
    ax.set_yscale("log")
    for x, r in zip(positions, rows):
        judged = r["goal"] is not None
        color = "black" if judged else "#666666"
        ax.hlines(r["reference_goal"], x - 0.4, x + 0.4, colors=color, linestyles="-" if judged else ":", linewidth=2.2)
        arrow = "≤" if r["goal_op"] == "<=" else "≥"
        where = "" if judged else f" (at {r['goal_size'] // 1000}k)"
        ax.annotate(f"goal {arrow}{r['reference_goal']:g}{where}", (x, r["reference_goal"]), textcoords="offset points",
                    xytext=(0, -4 if r["goal_op"] == "<=" else 4), fontsize=7,
                    va="top" if r["goal_op"] == "<=" else "bottom", ha="center", color=color,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip
        ax.annotate(f"{r['ratio']:.2f}", (x, r["ratio"]), textcoords="offset points", xytext=(0, 3), ha="center",
                    fontsize=8, fontweight="bold")  # fmt: skip
    ax.axhline(1.0, color="#555555", linewidth=0.8, linestyle="--")
    ax.set_xticks(
        list(positions), [f"{r['short']}\nvs {PEERS.get(peer_kind(r['id']), 'peer')}" for r in rows], fontsize=8
    )
    low, high = min(ratios + [r["reference_goal"] for r in rows]), max(ratios + [r["reference_goal"] for r in rows])
    ax.set_ylim(low / 1.8, high * 1.8)
    ax.set_ylabel("feedsvc ÷ peer, same run (log)")
    machine = results.get("machine", {})
    settings = results.get("settings", {})
    ax.set_title(
        "feedsvc as an operator runs it, against a peer measured in the same run\n"
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; {results.get('when', '')}; "
        f"feedsvc {machine.get('feedsvc_source', '?')}; rounds {settings.get('rounds', '?')}, "
        f"wrk {settings.get('wrk_seconds', '?')} s; others' CPU share before rounds: {others_cpu(results)}",
        fontsize=9,
    )
    ax.legend(
        handles=[
            Patch(color=COLORS[True], label="meets its goal"),
            Patch(color=COLORS[False], label="misses its goal"),
            Patch(color=COLORS[None], label="goal is for another size"),
            Line2D([], [], color="black", linewidth=2.2, label="goal (time, memory: under; req/s: over)"),
            Patch(facecolor="white", edgecolor="black", hatch="//", label="floor: what the goal allows at best"),
        ],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=5,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    print(f"written: {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=BENCH / "out" / "service.json")
    parser.add_argument("--out", type=Path, default=BENCH / "service.png")
    args = parser.parse_args(argv)
    plot(json.loads(args.results.read_text()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
