#!/usr/bin/env bash
# send_callgrind.sh [COURIER_BIN]: the instructions a production gateway spends on one
# private send (POST /api/v1/messages, authenticated, appended to the inbox in Redis),
# counted by valgrind's callgrind, which repeats closely on a busy machine as on a quiet
# one. Runs the gateway twice (500 and 1,500 sends, one at a time unless CG_CONCURRENCY says more) and prints the difference
# per send, so that start-up, imports and sign-ups cancel out. A few minutes. Compare two
# commits by pointing COURIER_BIN at each one's .venv/bin/courier (same run, alternating).
# Needs redis-server and the MariaDB of `make test` (root on 127.0.0.1:3306).
# CG_MODE=embedded counts an embedded server instead (no Redis, SQLite in a fresh data
# directory: each send is written, with the conversation's state, in SqliteInbox's
# transaction), the sends spread over CG_PAIRS private chats (default 1).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COURIER=${1:-$REPO/.venv/bin/courier}
PY=$(dirname "$COURIER")/python
PORT=${CG_PORT:-8851}
RPORT=${CG_REDIS_PORT:-6396}
OUT=$(mktemp -d)
if [[ ${CG_MODE:-production} == embedded ]]; then trap 'rm -rf "$OUT"' EXIT
else trap 'redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT; fi
count() {
  if [[ ${CG_MODE:-production} == embedded ]]; then
    (
      unset COURIER_REDIS_URL COURIER_DATABASE_URL
      export COURIER_DATA_DIR="$OUT/data-$1" COURIER_JWT_SECRET=callgrind-secret-0123456789abcdef0123
      export COURIER_PORT=$PORT COURIER_LOG_LEVEL=warning COURIER_SEND_RATE=0 COURIER_REGISTRATIONS=0
      export COURIER_ARGON2_TIME_COST=1 COURIER_ARGON2_MEMORY_KIB=8192 COURIER_ARGON2_PARALLELISM=1
      mkdir -p "$COURIER_DATA_DIR"
      valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.cg" "$COURIER" serve >"$OUT/serve-$1.log" 2>&1 &
      server=$!
      "$PY" "$HERE/send_client.py" --port "$PORT" --sends "$1" --concurrency "${CG_CONCURRENCY:-1}" \
        --pairs "${CG_PAIRS:-1}"
      kill -INT "$server"; wait "$server" || true
    )
    callgrind_annotate "$OUT/$1.cg" >"$OUT/$1.txt" 2>/dev/null
    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/$1.txt"
    return
  fi
  redis-server --port "$RPORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --logfile "$OUT/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local db="courier_cg_$PORT"
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
  export COURIER_DATABASE_URL="mysql+pymysql://root@127.0.0.1:3306/$db?charset=utf8mb4&ssl_disabled=1"
  export COURIER_REDIS_URL="redis://127.0.0.1:$RPORT/0" COURIER_JWT_SECRET=callgrind-secret-0123456789abcdef0123
  export COURIER_PORT=$PORT COURIER_LOG_LEVEL=warning COURIER_SEND_RATE=0 COURIER_REGISTRATIONS=0
  export COURIER_ARGON2_TIME_COST=1 COURIER_ARGON2_MEMORY_KIB=8192 COURIER_ARGON2_PARALLELISM=1
  "$(dirname "$COURIER")/courier" migrate >/dev/null 2>&1
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.cg" "$COURIER" serve >"$OUT/serve-$1.log" 2>&1 &
  local server=$!
  "$PY" "$HERE/send_client.py" --port "$PORT" --sends "$1" --concurrency "${CG_CONCURRENCY:-1}"
  kill -INT "$server"; wait "$server" || true
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db"
  callgrind_annotate "$OUT/$1.cg" >"$OUT/$1.txt" 2>/dev/null
  awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/$1.txt"
}
few=$(count 500)
many=$(count 1500)
echo "per send: $(( (many - few) / 1000 )) instructions ($COURIER)"
