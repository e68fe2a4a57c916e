#!/usr/bin/env bash
# courier-target.sh — start Courier for a benchmark (make-bench.sh; any harness that starts a
# server in a process group and stops it with TERM).
#
#   courier-target.sh production PORT REDIS_URL [--flush-redis]
#       one `courier serve` + one `courier worker`, a fresh MariaDB database
#       (courier_bench_PORT on 127.0.0.1:3306, root, no password; `courier migrate` first)
#       and the given Redis (the benchmark's own). --flush-redis empties that
#       Redis database first (only ever pass it for a Redis of the bench's own).
#   courier-target.sh embedded PORT
#       one `courier serve` on a fresh temporary data directory (SQLite, in-process bus).
#
# Settings for a benchmark, and why (every guarantee stays on: JWT checked on each call,
# each message appended to the inbox streams and persisted once, cursors, idempotency):
#   COURIER_LOG_LEVEL=warning   the per-message info lines (docs/api.md, Logs) are for normal
#                               rates; operators at high rates, and benchmarks (docs/api.md),
#                               run at warning.
#   COURIER_ARGON2_TIME_COST=1 COURIER_ARGON2_MEMORY_KIB=8192 COURIER_ARGON2_PARALLELISM=1
#                               registering thousands of bench users with the default argon2
#                               (t=3, 64 MiB) takes minutes; hashing is not on any measured path.
#   COURIER_SEND_RATE=0         the per-user send limit (20/s) would refuse the closed-loop
#                               throughput scenario's senders.
#   COURIER_REGISTRATIONS=0 COURIER_WS_MAX_PER_ADDRESS=0 COURIER_HASH_QUEUE=100000
#                               the load generator signs up thousands of users and opens thousands of
#                               sockets from one address, and registers them many at a time;
#                               the defaults (30 sign-ups an hour, 2000 sockets per address, 8
#                               hashes waiting) are for clients spread over the internet.
# Any COURIER_* variable already set in the environment wins over these defaults.
#
# BENCH_GATEWAY_CPUS, BENCH_WORKER_CPUS (taskset lists, e.g. 0 and 1): pin `courier serve` and
# `courier worker` to those CPUs, to see what one costs the other on a shared machine.
#
# BENCH_REUSE=1 keeps the database (and Redis) of an earlier run, with its users (and tokens:
# set the same COURIER_JWT_SECRET).
#
# Process handling: `courier serve` runs in this script's process group (the harness reads
# the RSS/CPU of the process owning the port and checks it is in that group, and stops the
# group with TERM then KILL). The worker runs in a process group of its own with a parent-death
# signal, so that on TERM this script can stop the gateway first, let the worker drain
# stream:persist (bounded), then stop it and print a summary that checks nothing was lost:
# rows in `messages` + backlog + dead letters == messages accepted.
set -uo pipefail

MODE=${1:?usage: courier-target.sh production PORT REDIS_URL [--flush-redis] [--gateways N] | embedded PORT}
PORT=${2:?port}
REDIS_URL=${3:-}
FLUSH=0
GATEWAYS=1
shift 3 2>/dev/null || shift $#
while [[ $# -gt 0 ]]; do
  case "$1" in
    --flush-redis) FLUSH=1; shift ;;
    --gateways) GATEWAYS=$2; shift 2 ;;  # N `courier serve` on one port (COURIER_REUSE_PORT=1)
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COURIER=${COURIER_BIN:-$REPO/.venv/bin/courier}
PY=$(dirname "$COURIER")/python

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 20,000 sockets need more than 20,000 fds
log() { echo "[courier-target $(date -u +%H:%M:%S)] $*" >&2; }

export COURIER_HOST=127.0.0.1 COURIER_PORT="$PORT"
export COURIER_LOG_LEVEL=${COURIER_LOG_LEVEL:-warning}
export COURIER_ARGON2_TIME_COST=${COURIER_ARGON2_TIME_COST:-1}
export COURIER_ARGON2_MEMORY_KIB=${COURIER_ARGON2_MEMORY_KIB:-8192}
export COURIER_ARGON2_PARALLELISM=${COURIER_ARGON2_PARALLELISM:-1}
export COURIER_SEND_RATE=${COURIER_SEND_RATE:-0}
export COURIER_REGISTRATIONS=${COURIER_REGISTRATIONS:-0}
export COURIER_WS_MAX_PER_ADDRESS=${COURIER_WS_MAX_PER_ADDRESS:-0}
export COURIER_HASH_QUEUE=${COURIER_HASH_QUEUE:-100000}
export COURIER_JWT_SECRET=${COURIER_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}

SERVE_PID="" WORKER_PID="" SCRAPER_PID="" TMP=""
EXTRA_PIDS=()
STATE=$(mktemp -d /tmp/courier-target.XXXXXX)

metric() {  # metric NAME: the value of one sample in the last /metrics scrape
  awk -v n="$1" '$1 == n {print int($2)}' "$STATE/metrics" 2>/dev/null | tail -1
}

push_cost() {  # mean time to hand one notification to every local socket (courier_push_seconds)
  awk '$1 == "courier_push_seconds_sum" {s = $2} $1 == "courier_push_seconds_count" {c = $2}
       END {if (c > 0) printf "push: %d notifications, %.1f us each, %.2f s in all", c, 1e6 * s / c, s}' \
    "$STATE/metrics" 2>/dev/null
}

gc_cost() {  # the collector's pauses by generation (courier_gc_pause_seconds): how many, how long in all
  awk 'match($1, /^courier_gc_pause_seconds_(count|sum)\{generation="[0-9]"\}$/) {
         g = substr($1, length($1) - 2, 1); if ($1 ~ /_count/) c[g] = $2; else s[g] = $2 }
       END {out = "gc:"; for (g = 0; g < 3; g++) if (c[g] > 0) out = out sprintf(" gen%d %d pauses %.0f ms", g, c[g], 1000 * s[g]);
            if (out != "gc:") print out}' "$STATE/metrics" 2>/dev/null
}

scrape_loop() {  # keep the last /metrics (the accepted counter) for the summary at exit
  while sleep 2; do
    curl -s -m 1 "http://127.0.0.1:$PORT/metrics" -o "$STATE/metrics.new" && mv "$STATE/metrics.new" "$STATE/metrics"
  done
}

summary_production() {
  local accepted rows backlog dead
  accepted=$(metric courier_messages_accepted_total)
  rows=$(mysql -h 127.0.0.1 -P 3306 -u root -N -e "SELECT COUNT(*) FROM $DB.messages" 2>/dev/null || echo "?")
  backlog=$(redis-cli -u "$REDIS_URL" XLEN stream:persist 2>/dev/null || echo "?")
  dead=$(redis-cli -u "$REDIS_URL" XLEN stream:persist:dead 2>/dev/null || echo "?")
  log "summary: accepted (last /metrics scrape) ${accepted:-?}; rows in $DB.messages $rows;" \
      "not yet persisted (stream:persist) $backlog; dead letters $dead; $(push_cost); $(gc_cost); worker CPU ${WORKER_CPU:-?} s"
}

stop_all() {
  trap - TERM INT EXIT
  [[ -n "$SCRAPER_PID" ]] && kill "$SCRAPER_PID" 2>/dev/null
  for pid in "$SERVE_PID" "${EXTRA_PIDS[@]}"; do
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "$SERVE_PID" "${EXTRA_PIDS[@]}"; do
    [[ -n "$pid" ]] && wait "$pid" 2>/dev/null
  done
  if [[ -n "$WORKER_PID" ]]; then
    # Let the worker catch up with what the gateway accepted (make-bench.sh KILLs after 10 s).
    for _ in $(seq 50); do
      [[ "$(redis-cli -u "$REDIS_URL" XLEN stream:persist 2>/dev/null)" == "0" ]] && break
      sleep 0.1
    done
    WORKER_CPU=$(awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$WORKER_PID/stat" 2>/dev/null)
    kill -TERM "$WORKER_PID" 2>/dev/null
    wait "$WORKER_PID" 2>/dev/null
    summary_production
  fi
  if [[ "$MODE" == embedded && -n "$TMP" ]]; then
    log "summary: accepted (last /metrics scrape) $(metric courier_messages_accepted_total); rows in messages" \
        "$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from messages").fetchone()[0])' "$TMP/courier.db" 2>/dev/null);" \
        "$(push_cost)"
    [[ ${BENCH_REUSE:-0} == 1 ]] || rm -rf "$TMP"
  fi
  rm -rf "$STATE"
  exit 0
}
trap stop_all TERM INT EXIT

case "$MODE" in
  production)
    [[ -n "$REDIS_URL" ]] || { echo "production mode needs a REDIS_URL" >&2; exit 2; }
    DB=courier_bench_$PORT
    if [[ ${BENCH_REUSE:-0} == 1 ]]; then
      mysql -h 127.0.0.1 -P 3306 -u root -e "CREATE DATABASE IF NOT EXISTS $DB CHARACTER SET utf8mb4" || exit 1
    else
      mysql -h 127.0.0.1 -P 3306 -u root -e \
        "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB CHARACTER SET utf8mb4" || exit 1
      if [[ $FLUSH == 1 ]]; then redis-cli -u "$REDIS_URL" FLUSHDB >/dev/null || exit 1; fi
    fi
    export COURIER_REDIS_URL="$REDIS_URL" COURIER_DATABASE_URL="mysql+pymysql://root@127.0.0.1:3306/$DB"
    "$COURIER" migrate || exit 1
    # Own process group (so the harness's TERM to ours does not reach it before the gateway
    # has stopped), and KILL if this script dies without cleaning up.
    setsid setpriv --pdeathsig KILL "$HERE/pin.sh" "${BENCH_WORKER_CPUS:-}" "$COURIER" worker &
    WORKER_PID=$!
    if (( GATEWAYS > 1 )); then
      # The first gateway is the one the harness measures (RSS, CPU): it owns the port
      # first; the others join it and get about their share of the connections.
      export COURIER_REUSE_PORT=1
      for _ in $(seq 2 "$GATEWAYS"); do "$HERE/pin.sh" "${BENCH_GATEWAY_CPUS:-}" "$COURIER" serve & EXTRA_PIDS+=($!); done
      sleep 0.5
    fi
    "$HERE/pin.sh" "${BENCH_GATEWAY_CPUS:-}" "$COURIER" serve &
    SERVE_PID=$!
    ;;
  embedded)
    if [[ ${BENCH_REUSE:-0} == 1 ]]; then
      TMP=/tmp/courier-bench-data.$PORT.kept; mkdir -p "$TMP"
    else
      TMP=$(mktemp -d /tmp/courier-bench-data.XXXXXX)
    fi
    export COURIER_DATA_DIR="$TMP"
    unset COURIER_REDIS_URL COURIER_DATABASE_URL
    "$COURIER" serve &
    SERVE_PID=$!
    ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
log "$MODE mode: serve pid $SERVE_PID${WORKER_PID:+, worker pid $WORKER_PID}, port $PORT"
# BENCH_PIDS_FILE: where a caller (make-bench.sh) reads the gateway's and the worker's PIDs
[[ -n ${BENCH_PIDS_FILE:-} ]] && echo "$SERVE_PID ${WORKER_PID:-0}" > "$BENCH_PIDS_FILE"
scrape_loop &
SCRAPER_PID=$!
wait "$SERVE_PID"
log "courier serve exited ($?)"
SERVE_PID=""
stop_all
