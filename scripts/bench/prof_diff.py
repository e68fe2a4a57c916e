"""prof_diff.py --per N FEW.prof MANY.prof [A_FEW.prof A_MANY.prof ...]: the Python functions'
calls per push from two cProfile outputs of push_callgrind.sh (CG_TOOL=cprofile), the
difference of the two runs divided by N (the pushes between them), so that start-up
cancels. With a second pair (--against A_FEW A_MANY), both trees side by side and the
functions whose calls per push differ most. Calls are counted exactly; the times beside
them are cProfile's, inflated by its own overhead, a guide only."""
from __future__ import annotations

import argparse
import pstats
import re

# Two trees name one function alike: the path from the package on (the trees' own
# folders differ), no line number (edits move them), no object addresses.
_TREE = re.compile(r"^.*?/(adapters|application|domain|entrypoints)/")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def per_push(few: str, many: str, n: int) -> dict[str, tuple[float, float]]:
    """{function: (calls per push, tottime us per push)}."""
    def load(path: str) -> dict[str, tuple[int, float]]:
        stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
        out: dict[str, tuple[int, float]] = {}
        for (file, _line, name), (_, calls, tottime, _, _) in stats.items():
            where = _TREE.sub(r"\1/", file.split("site-packages/")[-1])
            key = _ADDRESS.sub("", f"{where}({name})")
            c, t = out.get(key, (0, 0.0))
            out[key] = (c + calls, t + tottime)
        return out

    a, b = load(few), load(many)
    return {k: ((b.get(k, (0, 0.0))[0] - a.get(k, (0, 0.0))[0]) / n,
                (b.get(k, (0, 0.0))[1] - a.get(k, (0, 0.0))[1]) / n * 1e6) for k in set(a) | set(b)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per", type=int, required=True)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--against", nargs=2, metavar=("A_FEW", "A_MANY"))
    parser.add_argument("few")
    parser.add_argument("many")
    args = parser.parse_args()
    b = per_push(args.few, args.many, args.per)
    if not args.against:
        rows = sorted(b.items(), key=lambda kv: -kv[1][0])[:args.top]
        print(f"calls per push: {sum(c for c, _ in b.values()):.1f}; the most called:")
        for name, (calls, us) in rows:
            print(f"{calls:9.2f} {us:8.2f} us  {name}")
        return
    a = per_push(*args.against, args.per)
    print(f"calls per push: A {sum(c for c, _ in a.values()):.1f}, B {sum(c for c, _ in b.values()):.1f}")
    keys = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, (0, 0))[0] - a.get(k, (0, 0))[0]))
    print(f"{'A calls':>9} {'B calls':>9} {'B-A':>8}  function")
    for k in keys[:args.top]:
        ca, cb = a.get(k, (0, 0))[0], b.get(k, (0, 0))[0]
        if abs(cb - ca) < 0.01:
            break
        print(f"{ca:9.2f} {cb:9.2f} {cb - ca:8.2f}  {k}")


if __name__ == "__main__":
    main()
