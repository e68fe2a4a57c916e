"""cg_diff.py --per N A_FEW.cg A_MANY.cg B_FEW.cg B_MANY.cg [--inclusive] [--top 40]: the
functions whose instructions per push differ most between two trees, from the callgrind
outputs push_callgrind.sh keeps (CG_KEEP): each tree's (many - few) / N per function, by
callgrind_annotate, then B - A. Recursion levels ('2, '3...) are folded into their function
and CPython's build paths cut, so both trees' names meet. Python functions have no name of
their own here (they are the interpreter's loop): prof_diff.py names them."""
from __future__ import annotations

import argparse
import re
import subprocess

_ROW = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$")


def per_function(path: str, inclusive: bool) -> dict[str, int]:
    args = ["callgrind_annotate", "--threshold=100", path]
    if inclusive:
        args.insert(1, "--inclusive=yes")
    text = subprocess.run(args, capture_output=True, text=True, errors="replace", check=True).stdout
    out: dict[str, int] = {}
    started = False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        match = _ROW.match(line) if started else None
        if not match:
            continue
        name = re.sub(r"^[^:]*/Python-[\d.]+/", "", match.group(2))
        name = re.sub(r"'\d+$", "", re.sub(r" \[.*\]$", "", name))
        out[name] = out.get(name, 0) + int(match.group(1).replace(",", ""))
    return out


def per_push(few: str, many: str, n: int, inclusive: bool) -> dict[str, float]:
    a, b = per_function(few, inclusive), per_function(many, inclusive)
    return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per", type=int, required=True, help="pushes between the two runs of a tree")
    parser.add_argument("--inclusive", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("a_few")
    parser.add_argument("a_many")
    parser.add_argument("b_few")
    parser.add_argument("b_many")
    args = parser.parse_args()
    a = per_push(args.a_few, args.a_many, args.per, args.inclusive)
    b = per_push(args.b_few, args.b_many, args.per, args.inclusive)
    print(f"{'A':>10} {'B':>10} {'B-A':>9}  function ({'inclusive' if args.inclusive else 'self'}, per push)")
    for k in sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) - a.get(k, 0)))[:args.top]:
        print(f"{a.get(k, 0):10.0f} {b.get(k, 0):10.0f} {b.get(k, 0) - a.get(k, 0):9.0f}  {k[:150]}")


if __name__ == "__main__":
    main()
