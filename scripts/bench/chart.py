#!/usr/bin/env python3
"""Chart of a run for docs/performance.md: push latency (p50 and p99 at each rate) and
fan-out throughput (deliveries/s against offered, per group size and rate), one bar per
server. Needs matplotlib (install it in a venv of its own, not in Courier's):

    python scripts/bench/chart.py RESULTS_DIR [RESULTS_DIR ...] -o docs/performance.png

Each RESULTS_DIR holds JSON lines (NAME.jsonl, one file per server: the load generator's
--out, or load.js's in docs/perf/runs/); a later directory's server of the same name
replaces an earlier one's."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(dirs: list[str]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for d in dirs:
        for path in sorted(Path(d).glob("*.jsonl")):
            runs[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("-o", "--output", default="docs/performance.png")
    args = parser.parse_args()
    runs = load(args.dirs)
    names = list(runs)
    fig, (push_ax, fan_ax) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / max(1, len(names))

    rates = sorted({r["rate"] for recs in runs.values() for r in recs if r.get("scenario") == "push"})
    for i, name in enumerate(names):
        by_rate = {r["rate"]: r for r in runs[name] if r.get("scenario") == "push"}
        xs = [j + i * width for j in range(len(rates))]
        p99 = [by_rate[rate]["latency_ms"]["p99"] if rate in by_rate else 0 for rate in rates]
        p50 = [by_rate[rate]["latency_ms"]["p50"] if rate in by_rate else 0 for rate in rates]
        bars = push_ax.bar(xs, p99, width, label=f"{name} p99")
        push_ax.bar(xs, p50, width * 0.5, color="black", alpha=0.5)
        for x, value in zip(xs, p99, strict=True):
            push_ax.text(x, value, f"{value:.0f}", ha="center", va="bottom", fontsize=7)
        bars.set_label(name)
    push_ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(rates))])
    push_ax.set_xticklabels([f"{rate} msg/s" for rate in rates])
    push_ax.set_yscale("log")
    push_ax.set_ylabel("POST -> frame latency, ms (bar p99, dark p50; log scale)")
    push_ax.set_title("Private push latency (200 online pairs)")
    push_ax.legend(fontsize=8)

    configs = []
    for recs in runs.values():
        for r in recs:
            if r.get("scenario") == "fanout" and (r["group_size"], r["rate"]) not in configs:
                configs.append((r["group_size"], r["rate"]))
    configs.sort()
    for i, name in enumerate(names):
        by_config = {(r["group_size"], r["rate"]): r for r in runs[name] if r.get("scenario") == "fanout"}
        xs = [j + i * width for j in range(len(configs))]
        values = [by_config[c]["on_time_deliveries_per_s"] / 1000 if c in by_config else 0 for c in configs]
        fan_ax.bar(xs, values, width, label=name)
        for x, value in zip(xs, values, strict=True):
            fan_ax.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=7)
    offered = [(g - 1) * r / 1000 for g, r in configs]
    fan_ax.scatter([j + width * (len(names) - 1) / 2 for j in range(len(configs))], offered, marker="_", s=900,
                   color="red", label="offered", zorder=3)
    fan_ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(configs))])
    fan_ax.set_xticklabels([f"{g} @ {r}/s" for g, r in configs])
    fan_ax.set_ylabel("deliveries per second on time (thousands)")
    fan_ax.set_title("Group fan-out throughput (group size @ messages/s)")
    fan_ax.legend(fontsize=8)
    fig.suptitle("Courier vs the bench's peers — 2 cores, server, Redis and load generator on one machine", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
