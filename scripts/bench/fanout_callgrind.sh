#!/usr/bin/env bash
# fanout_callgrind.sh: the instructions the gateway's Python side spends on one notification
# to 1,000 sockets (fanout_micro.py --null: parse, Gateway.on_notification, Frames), counted
# by valgrind's callgrind, which repeats to 0.1% on a busy machine as on a quiet one. Runs
# fanout_micro twice (100 and 300 notifications) and prints the difference per notification,
# so start-up and imports cancel out. About a minute. Compare commits in a worktree of each.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
count() {
  PYTHONPATH="$REPO" valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.cg" \
    "$REPO/.venv/bin/python" -P "$HERE/fanout_micro.py" --null --notifications "$1" >/dev/null 2>&1
  callgrind_annotate "$OUT/$1.cg" >"$OUT/$1.txt" 2>/dev/null
  awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/$1.txt"
}
few=$(count 100)
many=$(count 300)
echo "per notification to 1,000 sockets: $(( (many - few) / 200 )) instructions"
