#!/usr/bin/env bash
# deliver_callgrind.sh [OUT]: deliver_micro.py against a redis-server of its own (port 6395)
# run under valgrind's callgrind, then Redis's total instruction count (docs/perf-notes.md,
# fourth round). Instructions, unlike seconds, do not depend on what else the machine does:
# compare two commits by running this in a worktree of each. About a minute.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-/tmp/deliver.callgrind}
PORT=6395
valgrind --tool=callgrind --callgrind-out-file="$OUT" \
  redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no >"$OUT.log" 2>&1 &
VALGRIND=$!
trap 'redis-cli -p $PORT shutdown nosave >/dev/null 2>&1 || true; wait $VALGRIND || true' EXIT
for _ in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.3; done
"$REPO/.venv/bin/python" "$HERE/deliver_micro.py" "redis://127.0.0.1:$PORT/0"
redis-cli -p $PORT shutdown nosave >/dev/null 2>&1 || true
wait $VALGRIND || true
trap - EXIT
callgrind_annotate "$OUT" >"$OUT.txt" 2>/dev/null
grep "PROGRAM TOTALS" "$OUT.txt"
