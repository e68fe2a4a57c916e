#!/usr/bin/env bash
# make-bench.sh — `make bench`: the yardstick's rows for Courier in production mode, measured
# by the repository's own load generator (scripts/bench/loadgen), in a few minutes.
#
# A fresh production Courier as scripts/bench/courier-target.sh runs it: one `courier serve`
# + one `courier worker`, a fresh MariaDB database courier_bench_PORT on 127.0.0.1:3306 (root,
# no password; dropped at the end) and a Redis of its own on a free port, started in a
# temporary directory and stopped here. Loopback only. Prints the rows (push latency at 500
# and 2000 msg/s, closed-loop sends/s with every message delivered, group fan-out to 1000
# members at 50 and 100 msg/s, 5000 connects, memory per socket), the CPU each scenario took,
# the load generator's own cost, and the server's summary (messages accepted against rows
# persisted: nothing lost, nothing doubled).
#
# Environment (all optional):
#   BENCH_PORT, BENCH_REDIS_PORT  ports (default: the first free from 8831 and 6392)
#   BENCH_ARGS     more load generator options (sizes, rates: `.venv/bin/python scripts/bench/loadgen --help`)
#   BENCH_QUICK=1  small sizes (about a minute): 1000 sockets, 100 pairs, groups of 200
#   BENCH_OUT      append the JSON lines (one per scenario, then "rows") to this file
#   BENCH_LABEL    the label of Courier's rows (default courier)
#   BENCH_LOADGEN_CPUS, BENCH_REDIS_CPUS  pin the load generator and the bench's Redis to these
#                  CPUs (taskset lists); with courier-target.sh's BENCH_GATEWAY_CPUS and
#                  BENCH_WORKER_CPUS, to see what each process costs the others on a shared machine
#   BENCH_MODE     production (default) or embedded (one `courier serve` on a fresh SQLite
#                  data directory; the Redis started here is then only the peers')
#   COURIER_BIN    the courier to run (default .venv/bin/courier: make bench-compare passes others)
#   BENCH_PEERS    a folder of the other servers of docs/performance.md (floor_py/server.py,
#                  aiohttp_py/server.py, ws_node/server.js): each is measured after Courier with
#                  the same options, and every row gets its ratio to the fastest Python server
#   BENCH_PEERS_PYTHON  the Python for them (needs tornado, aiohttp, redis; default: the
#                  folder's .venv or its parent's, else python3)
# Needs redis-server, MariaDB (`make services` sees to both), and the venv `make install` made.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${BENCH_PYTHON:-$REPO/.venv/bin/python}  # the load generator: uvloop and orjson, Courier's own dependencies
export COURIER_BIN=${COURIER_BIN:-$REPO/.venv/bin/courier}
LABEL=${BENCH_LABEL:-courier}

in_use() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while in_use "$p"; do p=$((p + 1)); done; echo "$p"; }
PORT=${BENCH_PORT:-$(free_port 8831)}
RPORT=${BENCH_REDIS_PORT:-$(free_port 6392)}
for port in $PORT $RPORT; do
  if in_use "$port"; then echo "make bench: port $port is in use" >&2; exit 2; fi
done
[[ -x $COURIER_BIN ]] || { echo "make bench: no $COURIER_BIN (make install)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "make bench: redis-server is missing (make services)" >&2; exit 2; }
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  SIZES=(--connect 1000 --pairs 100 --rates 500,2000 --push-seconds 4 --tp-concurrency 8,32 --tp-seconds 3
         --fanout 200@50,200@100 --fanout-seconds 4)
else
  SIZES=(--connect 5000 --pairs 200 --rates 500,2000 --push-seconds 10 --tp-concurrency 8,32,128 --tp-seconds 5
         --fanout 1000@50,1000@100 --fanout-seconds 10)
fi
# shellcheck disable=SC2206
EXTRA=(${BENCH_ARGS:-})

LOG=$(mktemp -d /tmp/courier-make-bench.XXXXXX)
OUT=${BENCH_OUT:-$LOG/results.jsonl}
redis-server --port "$RPORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no --dir "$LOG" \
  --pidfile "$LOG/redis.pid" --logfile "$LOG/redis.log"
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PID=$(cat "$LOG/redis.pid")
[[ -n ${BENCH_REDIS_CPUS:-} ]] && taskset -apc "$BENCH_REDIS_CPUS" "$REDIS_PID" >/dev/null
TARGET="" PEER=""
stop_group() {  # TERM a process group we started, then KILL what is left after 10 s
  local pg=$1
  [[ -n $pg ]] || return 0
  kill -TERM -- "-$pg" 2>/dev/null || kill -TERM "$pg" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pg" 2>/dev/null || true
}
cleanup() {
  stop_group "$TARGET"; TARGET=""
  stop_group "$PEER"; PEER=""
  kill "$REDIS_PID" 2>/dev/null || true
  mysql -h 127.0.0.1 -P 3306 -u root -e "DROP DATABASE IF EXISTS courier_bench_$PORT" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # wait_port PORT PID: the port answers, or the process (its group's leader) has died
  for _ in $(seq 300); do in_use "$1" && return 0; kill -0 "$2" 2>/dev/null || return 1; sleep 0.1; done
  return 1
}

# Argon2 at 64 KiB (the default 64 MiB; courier-target.sh's 8 MiB would still take a minute for
# the 5000 users' 10,000 hashes on two cores): registering users is not on any measured path.
MODE=${BENCH_MODE:-production}
case $MODE in
  production) TARGET_ARGS=(production "$PORT" "redis://127.0.0.1:$RPORT/0" --flush-redis) ;;
  embedded) TARGET_ARGS=(embedded "$PORT") ;;
  *) echo "make bench: BENCH_MODE is production or embedded" >&2; exit 2 ;;
esac
COURIER_ARGON2_MEMORY_KIB=${COURIER_ARGON2_MEMORY_KIB:-64} BENCH_PIDS_FILE="$LOG/pids" \
  setsid "$HERE/courier-target.sh" "${TARGET_ARGS[@]}" >"$LOG/server.log" 2>&1 &
TARGET=$!
wait_port "$PORT" "$TARGET" || { echo "make bench: Courier did not start (see $LOG/server.log)" >&2; tail -20 "$LOG/server.log" >&2; exit 1; }
read -r SPID WPID < "$LOG/pids"
echo "Courier $MODE mode on 127.0.0.1:$PORT (gateway pid $SPID, worker pid $WPID, redis port $RPORT); logs in $LOG" >&2
REDIS_ARGS=(--redis-pid "$REDIS_PID")
[[ $MODE == production ]] || REDIS_ARGS=()
timeout 900 "$HERE/pin.sh" "${BENCH_LOADGEN_CPUS:-}" "$PY" "$HERE/loadgen" --base "http://127.0.0.1:$PORT" --pid "$SPID" --worker-pid "$WPID" \
  "${REDIS_ARGS[@]}" --label "$LABEL" --out "$OUT" "${SIZES[@]}" "${EXTRA[@]}" --max-seconds 850 \
  > "$LOG/courier.txt" 2> "$LOG/courier.log" || echo "make bench: the load generator failed (see $LOG/courier.log)" >&2
cat "$LOG/courier.txt"
stop_group "$TARGET"; TARGET=""  # the target writes its summary (rows persisted) on its way out
grep "summary" "$LOG/server.log" | sed 's/^\[courier-target [0-9:]*\] /server /' || true

if [[ -n ${BENCH_PEERS:-} ]]; then
  PEERS_DIR=$(cd "$BENCH_PEERS" && pwd)
  PPY=${BENCH_PEERS_PYTHON:-}
  for v in "$PEERS_DIR/.venv/bin/python" "$PEERS_DIR/../.venv/bin/python"; do
    [[ -z $PPY && -x $v ]] && PPY=$v
  done
  PPY=${PPY:-python3}
  FILES=("$OUT")
  for peer in floor_py aiohttp_py ws_node; do
    case $peer in
      ws_node) SRC=$PEERS_DIR/$peer/server.js; RUN=(node "$SRC") ;;
      *) SRC=$PEERS_DIR/$peer/server.py; RUN=("$PPY" "$SRC") ;;
    esac
    [[ -f $SRC ]] || continue
    PP=$(free_port $((PORT + 1)))
    redis-cli -p "$RPORT" FLUSHALL >/dev/null
    setsid "${RUN[@]}" --port "$PP" --redis "redis://127.0.0.1:$RPORT/0" >"$LOG/$peer.server.log" 2>&1 &
    PEER=$!
    if ! wait_port "$PP" "$PEER"; then echo "make bench: $peer did not start (see $LOG/$peer.server.log)" >&2; stop_group "$PEER"; PEER=""; continue; fi
    PPID_=$(ss -Hltnp "sport = :$PP" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    echo "$peer on 127.0.0.1:$PP (pid $PPID_)" >&2
    timeout 900 "$PY" "$HERE/loadgen" --base "http://127.0.0.1:$PP" --pid "${PPID_:-$PEER}" --redis-pid "$REDIS_PID" \
      --label "$peer" --out "$LOG/$peer.jsonl" "${SIZES[@]}" "${EXTRA[@]}" --max-seconds 850 \
      > "$LOG/$peer.txt" 2> "$LOG/$peer.log" || echo "make bench: the load generator failed on $peer (see $LOG/$peer.log)" >&2
    stop_group "$PEER"; PEER=""
    FILES+=("$LOG/$peer.jsonl")
  done
  echo
  "$PY" "$HERE/loadgen" side-by-side --label "$LABEL" "${FILES[@]}"
fi
