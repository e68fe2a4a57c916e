#!/usr/bin/env python3
"""Summarise a py-spy collapsed-stack file (`py-spy record --format raw`) as text:
the functions with the most samples on top of the stack (self) and anywhere in it
(total), in percent of all samples.

    pyspy_summary.py push.folded [--top 40] [--filter SUBSTRING]
"""
from __future__ import annotations

import argparse
import os
import re
from collections import Counter

_LINE = re.compile(r"^(.*) (\d+)$")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + "/"


def frame_name(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep function and file, drop the line
    m = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", _REPO, "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{func} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folded")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--filter", default="", help="only stacks containing this text")
    args = parser.parse_args()
    self_count: Counter[str] = Counter()
    total_count: Counter[str] = Counter()
    samples = 0
    with open(args.folded) as f:
        for line in f:
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                continue
            stack, n = m.group(1), int(m.group(2))
            if args.filter and args.filter not in stack:
                continue
            frames = [frame_name(fr) for fr in stack.split(";")]
            samples += n
            if frames:
                self_count[frames[-1]] += n
            for name in set(frames):
                total_count[name] += n
    print(f"{samples} samples{' (filter: ' + args.filter + ')' if args.filter else ''}")
    print("\n--- self (top of stack) ---")
    for name, n in self_count.most_common(args.top):
        print(f"{100 * n / samples:6.2f}%  {name}")
    print("\n--- total (anywhere in the stack) ---")
    for name, n in total_count.most_common(args.top):
        print(f"{100 * n / samples:6.2f}%  {name}")


if __name__ == "__main__":
    main()
