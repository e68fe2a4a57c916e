#!/usr/bin/env bash
# make-bench.sh — `make bench`: a short end-to-end benchmark of Courier itself (< 3 minutes).
#
# Production mode as scripts/bench/courier-target.sh runs it (one courier serve + one courier
# worker, a fresh MariaDB database courier_bench_8831 on 127.0.0.1:3306, dropped at the end,
# a private Redis on port 6392 started and stopped here), driven by the shared bench's load.js
# on loopback:
# 1000 sockets connecting, private pushes at 2000 msg/s, closed-loop sends (32 senders), and a
# group of 1000 at 50 msg/s. Prints load.js's table and the server's own summary (messages
# accepted vs rows persisted, push time per notification).
#
# Needs node (load.js), redis-server, MariaDB, and the bench, which this repository does not
# hold: it is copied from BENCH_SRC (the folder holding load.js: `make bench BENCH_SRC=DIR`,
# or the script's first argument) to BENCH_DIR (default ~/.cache/im-bench) once, with
# `npm ci` there; after that BENCH_SRC is not needed. Figures on a busy machine are indicative only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_SRC=${1:-${BENCH_SRC:-}}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/im-bench}
PORT=${BENCH_PORT:-8831}
RPORT=${BENCH_REDIS_PORT:-6392}

if [[ ! -f $BENCH_DIR/load.js ]]; then
  [[ -n $BENCH_SRC ]] || { echo "make bench: give the bench's folder (the one holding load.js): make bench BENCH_SRC=DIR" >&2; exit 2; }
  [[ -f $BENCH_SRC/load.js ]] || { echo "make bench: no load.js in $BENCH_SRC (BENCH_SRC=DIR: the bench's folder)" >&2; exit 2; }
  mkdir -p "$BENCH_DIR" && cp -r --no-preserve=mode "$BENCH_SRC/." "$BENCH_DIR/"
fi
[[ -d $BENCH_DIR/node_modules/ws && -d $BENCH_DIR/node_modules/undici ]] || (cd "$BENCH_DIR" && npm ci --no-audit --no-fund >/dev/null)
for port in $PORT $RPORT; do
  if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "make bench: port $port is in use" >&2; exit 2; fi
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

LOG=$(mktemp -d /tmp/courier-make-bench.XXXXXX)
redis-server --port "$RPORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
  --pidfile "$LOG/redis.pid" --logfile "$LOG/redis.log"
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PID=$(cat "$LOG/redis.pid")
setsid "$HERE/courier-target.sh" production "$PORT" "redis://127.0.0.1:$RPORT/0" --flush-redis >"$LOG/server.log" 2>&1 &
TARGET=$!
cleanup() {
  kill -TERM -- "-$TARGET" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$TARGET" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$TARGET" 2>/dev/null || true
  kill "$REDIS_PID" 2>/dev/null || true
  # The target wrote its summary (rows persisted) on its way out: nothing is left behind.
  mysql -h 127.0.0.1 -P 3306 -u root -e "DROP DATABASE IF EXISTS courier_bench_$PORT" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 300); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
SPID=$(ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
echo "Courier production mode on 127.0.0.1:$PORT (gateway pid $SPID); logs in $LOG" >&2
(cd "$BENCH_DIR" && timeout 170 node load.js --base "http://127.0.0.1:$PORT" --pid "$SPID" --redis-pid "$REDIS_PID" \
   --label courier --scenarios connect,push,throughput,fanout --connect 1000 --pairs 200 --rates 2000 \
   --push-seconds 5 --tp-concurrency 32 --tp-seconds 5 --fanout 1000@50 --fanout-seconds 5 \
   --quiet-wait 2 --retries 0 --max-seconds 165 > "$LOG/load.txt" 2> "$LOG/load.log") || echo "load.js failed (see $LOG/load.log)" >&2
sed -n '/^$/,$p' "$LOG/load.txt"
cleanup
trap - EXIT
grep "summary" "$LOG/server.log" | sed 's/^\[courier-target [0-9:]*\] /server /' || true
