#!/usr/bin/env bash
# bench-compare.sh — `make bench-compare A=<commit> B=<commit> [ROUNDS=3]`: the yardstick's rows
# of two commits, measured alternately in one run (A B A B ...), and each figure's ratio B/A.
#
# Each commit is checked out into a temporary worktree (git worktree add --detach) and installed
# into a venv of its own there (editable, as `make install` does: migrations run from the tree);
# both are then run by this checkout's make-bench.sh and load generator (one yardstick for both,
# whatever the commits hold), ROUNDS times each, in turn, every run on a fresh production
# Courier (its own Redis, a fresh MariaDB database).
# Prints, for every figure, the median of A's rounds, the median of B's, and the median of the
# rounds' ratios B/A (round i's B against round i's A, which ran just before it): on a shared
# machine the load of the moment moves both runs of a round alike, and the ratio less than the
# figures. The worktrees are removed at the end; the JSON lines stay in the printed directory.
#
# Environment: ROUNDS (3), BENCH_ARGS / BENCH_QUICK (as make bench), KEEP_WORKTREES=1;
# BENCH_COMPARE_DIR=dir works there and keeps the worktrees: a later run with the same dir and
# commits skips the installs (the JSON lines of each run are then appended to the earlier ones:
# use a new dir, or remove its *.jsonl, for a new comparison); INSTALL_ONLY=1 stops after the installs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
A=${A:?usage: make bench-compare A=<commit> B=<commit> [ROUNDS=3]}
B=${B:?usage: make bench-compare A=<commit> B=<commit> [ROUNDS=3]}
ROUNDS=${ROUNDS:-3}
PY=${BENCH_PYTHON:-$REPO/.venv/bin/python}
PYTHON=${PYTHON:-python3}
A_SHA=$(git -C "$REPO" rev-parse --verify "$A^{commit}")
B_SHA=$(git -C "$REPO" rev-parse --verify "$B^{commit}")
if [[ -n ${BENCH_COMPARE_DIR:-} ]]; then
  WORK=$BENCH_COMPARE_DIR KEEP_WORKTREES=1
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/courier-bench-compare.XXXXXX)
fi
echo "bench-compare: A = $A (${A_SHA:0:10}), B = $B (${B_SHA:0:10}), $ROUNDS rounds; results in $WORK" >&2

cleanup() {
  [[ ${KEEP_WORKTREES:-0} == 1 ]] && return 0
  for x in a b; do
    [[ -d $WORK/$x ]] && git -C "$REPO" worktree remove --force "$WORK/$x" 2>/dev/null || true
  done
  git -C "$REPO" worktree prune 2>/dev/null || true
}
trap cleanup EXIT

install() {  # install SHA DIR: a worktree of the commit with Courier in a venv of its own
  if [[ -x $2/.venv/bin/courier && $(git -C "$2" rev-parse HEAD 2>/dev/null) == "$1" ]]; then
    echo "bench-compare: ${1:0:10} is installed in $2 already" >&2
    return 0
  fi
  git -C "$REPO" worktree add --detach --quiet "$2" "$1"
  "$PYTHON" -m venv "$2/.venv"
  { "$2/.venv/bin/pip" install -q --upgrade pip && "$2/.venv/bin/pip" install -q -e "$2"; } >> "$WORK/install.log" 2>&1 \
    || { echo "bench-compare: installing ${1:0:10} failed (see $WORK/install.log)" >&2; exit 1; }
  echo "bench-compare: installed ${1:0:10} in $2" >&2
}
install "$A_SHA" "$WORK/a"
install "$B_SHA" "$WORK/b"

[[ ${INSTALL_ONLY:-0} == 1 ]] && exit 0
for round in $(seq "$ROUNDS"); do
  for x in a b; do
    name=$([[ $x == a ]] && echo A || echo B)
    echo "bench-compare: round $round of $ROUNDS, $name" >&2
    COURIER_BIN="$WORK/$x/.venv/bin/courier" BENCH_OUT="$WORK/$x.jsonl" BENCH_LABEL="$name" BENCH_PEERS="" \
      bash "$HERE/make-bench.sh" > "$WORK/$x.$round.txt" 2>> "$WORK/bench.log" \
      || echo "bench-compare: round $round of $name failed (see $WORK/bench.log)" >&2
    grep -E "^(push|max sends|fan-out|connect|memory)" "$WORK/$x.$round.txt" | sed "s/^/  $name $round: /" >&2 || true
  done
done
echo
echo "A = $A (${A_SHA:0:10}), B = $B (${B_SHA:0:10}), $ROUNDS rounds, alternating"
[[ -s $WORK/a.jsonl && -s $WORK/b.jsonl ]] || { echo "bench-compare: no rows to compare" >&2; exit 1; }
"$PY" "$HERE/loadgen" compare "$WORK/a.jsonl" -- "$WORK/b.jsonl"
