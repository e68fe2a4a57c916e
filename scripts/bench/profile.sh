#!/usr/bin/env bash
# profile.sh — run one load generator scenario (scripts/bench/loadgen) against Courier with py-spy recording the gateway
# (and, in production mode, the worker); write collapsed stacks, flame graphs and text summaries.
#
#   profile.sh MODE NAME "LOAD ARGS" [OUTDIR]
#   profile.sh production push "--scenarios push --pairs 200 --rates 2000 --push-seconds 10"
#   profile.sh production fanout "--scenarios fanout --fanout 1000@50 --fanout-seconds 10"
#
# MODE is production (private Redis on port 6390, started and stopped here; MariaDB database
# courier_bench_8821) or embedded. Needs py-spy (pip install py-spy==0.4.3 in a venv of its own,
# never Courier's; PYSPY=path, default py-spy on the PATH). "LOAD ARGS" are the load generator's
# options (`.venv/bin/python scripts/bench/loadgen --help`).
#
# For quick iterations: REUSE=1 keeps the database and the users between runs (the first run
# saves them to /tmp/courier-bench-users.MODE.json, later ones log in with them), PROFILE=0
# runs without py-spy.
set -euo pipefail
MODE=${1:?mode}; NAME=${2:?name}; LOAD_ARGS=${3:?load args}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${4:-/tmp/courier-profiles}
PYSPY=${PYSPY:-py-spy}
PY=${BENCH_PYTHON:-$REPO/.venv/bin/python}
PORT=8821
RPORT=6390
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" || true

REDIS_PID=""
if [[ $MODE == production ]]; then
  redis-server --port $RPORT --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --pidfile /tmp/courier-profile-redis.pid --logfile /tmp/courier-profile-redis.log
  for _ in $(seq 50); do redis-cli -p $RPORT ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_PID=$(cat /tmp/courier-profile-redis.pid)
fi
USERS=/tmp/courier-bench-users.$MODE.json
USER_ARGS=(--save-users "$USERS")
if [[ ${REUSE:-0} == 1 ]]; then
  export BENCH_REUSE=1 COURIER_JWT_SECRET=courier-bench-fixed-secret-0123456789abcdef
  [[ -s $USERS ]] && USER_ARGS=(--users-file "$USERS")
fi
setsid "$HERE/courier-target.sh" "$MODE" $PORT "redis://127.0.0.1:$RPORT/0" --flush-redis --gateways "${GATEWAYS:-1}" >"$OUT/$NAME.server.log" 2>&1 &
TARGET_PGID=$!
cleanup() {
  kill -TERM -- "-$TARGET_PGID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$TARGET_PGID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$TARGET_PGID" 2>/dev/null || true
  if [[ -n "$REDIS_PID" ]]; then
    kill "$REDIS_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap cleanup EXIT
for _ in $(seq 300); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
SPID=$(ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
WPID=$(grep -o 'worker pid [0-9]*' "$OUT/$NAME.server.log" | grep -o '[0-9]*$' || true)

# Record only while the scenario runs: the load generator registers its users first (not
# timed), so py-spy starts when the log says the scenario began.
# shellcheck disable=SC2086
timeout 600 "$PY" "$HERE/loadgen" --base "http://127.0.0.1:$PORT" --pid "$SPID" \
    --redis-pid "${REDIS_PID:-0}" --quiet-wait 3 --retries 0 "${USER_ARGS[@]}" $LOAD_ARGS \
    >"$OUT/$NAME.load.txt" 2>"$OUT/$NAME.load.log" &
LOAD=$!
for _ in $(seq 1200); do
  grep -qE '\] (push|fanout|throughput|connect):' "$OUT/$NAME.load.log" 2>/dev/null && break
  sleep 0.1
done
[[ ${PROFILE:-1} == 1 ]] && "$PYSPY" record --pid "$SPID" --rate 250 --format raw --output "$OUT/$NAME.serve.folded" --nonblocking \
  --duration 12 >/dev/null 2>&1 &
SPY=$!
if [[ ${PROFILE:-1} == 1 && $MODE == production && -n "$WPID" ]]; then
  "$PYSPY" record --pid "$WPID" --rate 100 --format raw --output "$OUT/$NAME.worker.folded" --nonblocking \
    --duration 12 >/dev/null 2>&1 &
fi
wait $LOAD || true
wait ${SPY:-} 2>/dev/null || true
sleep 1  # py-spy on the worker ends with the same --duration
[[ -f "$OUT/$NAME.serve.folded" ]] && python3 "$HERE/pyspy_summary.py" "$OUT/$NAME.serve.folded" > "$OUT/$NAME.serve.txt" || true
[[ -f "$OUT/$NAME.worker.folded" ]] && python3 "$HERE/pyspy_summary.py" "$OUT/$NAME.worker.folded" > "$OUT/$NAME.worker.txt" || true
sed -n '1,/^$/p' "$OUT/$NAME.load.txt"
