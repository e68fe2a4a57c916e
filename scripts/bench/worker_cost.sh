#!/usr/bin/env bash
# worker_cost.sh [COURIER_BIN]: what `courier worker` (the persister) spends per message
# it stores, in production mode (Redis stream:persist -> MySQL/MariaDB).
#
# A gateway (no worker) takes WC_SENDS private sends (default 10,000) over WC_PAIRS
# conversations (default 200, the pairs of make bench's push scenario), 8 at a time, so
# that stream:persist holds them all; the gateway is stopped; then a worker that was
# started before the sends and stopped (SIGSTOP) once idle is let go, and drains the
# backlog in full batches (COURIER_WORKER_BATCH, 500). Printed: the worker's CPU seconds
# (user + system, /proc) per 1,000 messages, from just before it is let go until
# stream:persist is empty, and the wall time of the drain; with WC_DB_PID (the pid of a
# database server used by nobody else, e.g. one started for this on another port), that
# server's CPU over the same span too.
#
# Compare two commits by pointing COURIER_BIN at each one's .venv/bin/courier, same run,
# alternating. Needs redis-server, MariaDB (root on 127.0.0.1:WC_DB_PORT, default 3306). Ports:
# WC_PORT (8871) and WC_REDIS_PORT (6411), which must be free.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COURIER=${1:-$REPO/.venv/bin/courier}
TREE=$(cd "$(dirname "$COURIER")/../.." && pwd)  # run each tree's courier from its own root
PY=$(dirname "$COURIER")/python
PORT=${WC_PORT:-8871}
RPORT=${WC_REDIS_PORT:-6411}
DBPORT=${WC_DB_PORT:-3306}
SENDS=${WC_SENDS:-10000}
PAIRS=${WC_PAIRS:-200}
OUT=$(mktemp -d)
SERVER="" WORKER=""
cleanup() {
  [[ -n "$WORKER" ]] && { kill -CONT "$WORKER" 2>/dev/null; kill -TERM "$WORKER" 2>/dev/null; wait "$WORKER" 2>/dev/null; }
  [[ -n "$SERVER" ]] && { kill -INT "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  mysql -h 127.0.0.1 -P "$DBPORT" -u root -e "DROP DATABASE IF EXISTS courier_wc_$PORT" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT
for port in $PORT $RPORT; do
  if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "worker_cost: port $port is in use" >&2; exit 2; fi
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # clock ticks, user + system
hz=$(getconf CLK_TCK)

backlog() {  # backlog N: fresh Redis and database, N messages waiting in stream:persist
  redis-server --port "$RPORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --logfile "$OUT/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local db="courier_wc_$PORT"
  mysql -h 127.0.0.1 -P "$DBPORT" -u root -e \
    "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
  export COURIER_DATABASE_URL="mysql+pymysql://root@127.0.0.1:$DBPORT/$db?charset=utf8mb4&ssl_disabled=1"
  export COURIER_REDIS_URL="redis://127.0.0.1:$RPORT/0" COURIER_JWT_SECRET=worker-cost-secret-0123456789abcdef01
  export COURIER_PORT=$PORT COURIER_LOG_LEVEL=warning COURIER_SEND_RATE=0 COURIER_REGISTRATIONS=0
  export COURIER_ARGON2_TIME_COST=1 COURIER_ARGON2_MEMORY_KIB=8192 COURIER_ARGON2_PARALLELISM=1
  (cd "$TREE" && "$COURIER" migrate >/dev/null 2>&1)
  # the worker, idle, then stopped while the sends come
  (cd "$TREE" && exec "$COURIER" worker) >"$OUT/worker.log" 2>&1 &
  WORKER=$!
  sleep 4
  kill -STOP "$WORKER"
  (cd "$TREE" && exec "$COURIER" serve) >"$OUT/serve.log" 2>&1 &
  SERVER=$!
  "$PY" "$HERE/send_client.py" --port "$PORT" --sends "$1" --concurrency 8 --pairs "$PAIRS"
  kill -INT "$SERVER"; wait "$SERVER" || true
  SERVER=""
  local waiting
  waiting=$(redis-cli -p "$RPORT" XLEN stream:persist)
  [[ $waiting == "$1" ]] || { echo "worker_cost: $waiting messages in stream:persist, not $1" >&2; exit 1; }
}

drained() {  # wait until stream:persist is empty, then check the rows
  until [[ "$(redis-cli -p "$RPORT" XLEN stream:persist)" == 0 ]]; do sleep 0.05; done
}

rows() { mysql -h 127.0.0.1 -P "$DBPORT" -u root -N -e "SELECT COUNT(*) FROM courier_wc_$PORT.messages"; }

finish() {
  kill -TERM "$WORKER"; wait "$WORKER" || true
  WORKER=""
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
}

backlog "$SENDS"
w0=$(cpu "$WORKER"); d0=${WC_DB_PID:+$(cpu "$WC_DB_PID")}
t0=$(date +%s.%N)
kill -CONT "$WORKER"
drained
t1=$(date +%s.%N)
w1=$(cpu "$WORKER"); d1=${WC_DB_PID:+$(cpu "$WC_DB_PID")}
stored=$(rows)
[[ $stored == "$SENDS" ]] || { echo "worker_cost: $stored rows, not $SENDS" >&2; exit 1; }
finish
awk -v w="$((w1 - w0))" -v d="${d1:+$((d1 - d0))}" -v hz="$hz" -v n="$SENDS" -v t0="$t0" -v t1="$t1" \
    -v c="$COURIER" -v p="$PAIRS" 'BEGIN {
  printf "worker CPU %.3f s per 1,000 messages", 1000 * w / hz / n
  if (d != "") printf ", database server CPU %.3f s per 1,000", 1000 * d / hz / n
  printf "; drained %d messages (%d pairs) in %.2f s (%s)\n", n, p, t1 - t0, c
}'
