#!/usr/bin/env bash
# push_callgrind.sh [COURIER_BIN]: the instructions a production gateway spends on one push
# end to end, counted by valgrind's callgrind (steady on a busy machine as on a quiet one):
# POST /api/v1/messages of a private message whose recipient (and sender) have a WebSocket
# open on the same gateway - the request, the append to the inbox in Redis, the pub/sub
# notification back through the subscriber (adapters/redis/subscriber.py, subscription.py,
# pubsub.py), Gateway.on_notification and the frames written to the sockets
# (entrypoints/socket_writer.py). push_client.py sends one message at a time and waits for
# its frame, so no push overlaps another. The gateway (`courier serve`, no worker: the
# persist stream just grows, as in send_callgrind.sh) is the process under valgrind; it is
# run twice (CG_FEW and 3 x CG_FEW pushes, default 200 and 600) and the difference per push
# printed, so that start-up, imports, sign-ups and the sockets' opening cancel out.
# A few minutes. Compare two commits by pointing COURIER_BIN at each one's
# .venv/bin/courier (same run, alternating); the client is this tree's push_client.py.
# CG_PAIRS=K CG_INFLIGHT=C: K pairs, C pushes under way at once (push_client.py).
# CG_IDLE=S: no pushes; the sockets held open idle for S x CG_FEW and S x 3 x CG_FEW seconds,
# and the difference printed per second (the gateway's background work: timers, watchdogs).
# CG_TARGET=redis: redis-server under valgrind instead (the gateway runs as it is): Redis's
# instructions per push (deliver.lua and the rest of the send's scripts, the publish).
# CG_KEEP=<dir> keeps the two callgrind outputs there (<dir>/<pushes>.cg) for
# callgrind_annotate; CG_VALGRIND_ARGS=... adds to valgrind's options (--cache-sim=yes: the
# simulated cache misses, in the kept outputs' totals). CG_TOOL=strace counts system calls
# instead (strace -f -c, every thread of the gateway: what callgrind cannot see, the
# kernel's share), per push and by name. CG_TOOL=cprofile runs the gateway under cProfile
# (no valgrind) and prints the Python functions' calls per push (prof_diff.py), which
# callgrind cannot name: in its counts every Python function is the interpreter's loop.
# CG_IDLE_RATE=R (a tree's CG_IDLE figure, instructions a second) also prints the count per
# push without the timers' work, R times the difference of the two runs' push time.
# CG_TOOL=cpu runs the gateway natively and prints its CPU time per push (utime + stime of
# /proc/PID/stat, kernel included; as noisy as the machine: use CG_FEW=2000 or more; with
# CG_IDLE the sign-ups' hashing outweighs a short idle). cg_diff.py compares kept outputs
# of two trees per function. Needs redis-server and the MariaDB of `make test` (root on 127.0.0.1:3306).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COURIER=${1:-$REPO/.venv/bin/courier}
PY=$(dirname "$COURIER")/python
TREE=$(cd "$(dirname "$COURIER")/../.." && pwd)  # the gateway runs from its own tree (cwd is first on sys.path)
PORT=${CG_PORT:-8852}
RPORT=${CG_REDIS_PORT:-6397}
FEW=${CG_FEW:-200}
for port in "$PORT" "$RPORT"; do  # another run's gateway or Redis would answer in place of this one's
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (another run? set CG_PORT and CG_REDIS_PORT)" >&2; exit 1
  fi
done
OUT=$(mktemp -d)
trap 'redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT
count() {
  local redis=""
  if [[ ${CG_TARGET:-gateway} == redis ]]; then
    valgrind --tool=callgrind ${CG_VALGRIND_ARGS:-} --callgrind-out-file="$OUT/$1.cg" redis-server --port "$RPORT" \
      --bind 127.0.0.1 --save '' --appendonly no --logfile "$OUT/redis.log" >"$OUT/valgrind-redis-$1.log" 2>&1 &
    redis=$!
  else
    redis-server --port "$RPORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
      --logfile "$OUT/redis.log" >/dev/null
  fi
  for _ in $(seq 300); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local db="courier_cgp_$PORT"
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
  export COURIER_DATABASE_URL="mysql+pymysql://root@127.0.0.1:3306/$db?charset=utf8mb4&ssl_disabled=1"
  export COURIER_REDIS_URL="redis://127.0.0.1:$RPORT/0" COURIER_JWT_SECRET=callgrind-secret-0123456789abcdef0123
  export COURIER_PORT=$PORT COURIER_LOG_LEVEL=warning COURIER_SEND_RATE=0 COURIER_REGISTRATIONS=0
  export COURIER_ARGON2_TIME_COST=1 COURIER_ARGON2_MEMORY_KIB=8192 COURIER_ARGON2_PARALLELISM=1
  # One hash seed for every run (CG_HASHSEED): one cause of spread between counts less, the
  # dicts' and sets' layouts. Counts of one tree still spread by about 1% (how the loop's
  # turns fall, the timer work of a longer run): compare pairs, not single figures.
  export PYTHONHASHSEED=${CG_HASHSEED:-0}
  (cd "$TREE" && "$(dirname "$COURIER")/courier" migrate >/dev/null 2>&1)
  if [[ ${CG_TOOL:-callgrind} == cprofile ]]; then
    (cd "$TREE" && exec "$PY" -c "import cProfile, sys; sys.argv = ['courier', 'serve']
from entrypoints.cli import main
cProfile.run('main()', '$OUT/$1.prof')") >"$OUT/serve-$1.log" 2>&1 &
  elif [[ ${CG_TARGET:-gateway} == redis || ${CG_TOOL:-callgrind} == cpu ]]; then
    (cd "$TREE" && exec "$COURIER" serve) >"$OUT/serve-$1.log" 2>&1 &
  elif [[ ${CG_TOOL:-callgrind} == strace ]]; then
    (cd "$TREE" && exec strace -f -c -o "$OUT/$1.strace" "$COURIER" serve) >"$OUT/serve-$1.log" 2>&1 &
  else
    (cd "$TREE" && exec valgrind --tool=callgrind ${CG_VALGRIND_ARGS:-} --callgrind-out-file="$OUT/$1.cg" "$COURIER" serve) >"$OUT/serve-$1.log" 2>&1 &
  fi
  local server=$! t0=$SECONDS
  "$PY" "$HERE/push_client.py" --port "$PORT" --pushes "$1" --pairs "${CG_PAIRS:-1}" --inflight "${CG_INFLIGHT:-1}" \
    ${CG_IDLE:+--pushes 0 --idle $(( $1 * CG_IDLE ))} 2>"$OUT/client-$1.log" \
    || { cat "$OUT/client-$1.log" "$OUT/serve-$1.log" >&2; kill -INT "$server"; exit 1; }
  if [[ ${CG_TOOL:-callgrind} == cpu ]]; then  # the gateway's CPU time so far, user and system, in ns
    awk -v hz="$(getconf CLK_TCK)" '{printf "%d\n", ($14 + $15) * 1e9 / hz}' /proc/"$server"/stat >"$OUT/$1.ns"
    echo "gateway after $1: $(awk '$1 == "VmRSS:" {print $2, $3}' /proc/"$server"/status) resident" >&2
  fi
  if [[ ${CG_TOOL:-callgrind} == strace ]]; then kill -INT "$(pgrep -P "$server")"; else kill -INT "$server"; fi
  wait "$server" || true
  echo "run of $1: $((SECONDS - t0)) s" >&2
  cat "$OUT/client-$1.log" >&2
  sed -n 's/^pushes .* in \([0-9.]*\) s;.*/\1/p' "$OUT/client-$1.log" >"$OUT/$1.secs"  # the pushes' own wall time
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  if [[ -n $redis ]]; then wait "$redis" || true; fi
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db"
  if [[ ${CG_TOOL:-callgrind} == cpu ]]; then
    cat "$OUT/$1.ns"
    return
  fi
  if [[ ${CG_TOOL:-callgrind} == cprofile ]]; then
    if [[ -n ${CG_KEEP:-} ]]; then mkdir -p "$CG_KEEP"; cp "$OUT/$1.prof" "$CG_KEEP/$1.prof"; fi
    echo 0
    return
  fi
  if [[ ${CG_TOOL:-callgrind} == strace ]]; then
    if [[ -n ${CG_KEEP:-} ]]; then mkdir -p "$CG_KEEP"; cp "$OUT/$1.strace" "$CG_KEEP/$1.strace"; fi
    awk '$NF != "total" && $4 ~ /^[0-9]+$/ {print $NF, $4}' "$OUT/$1.strace" >"$OUT/$1.calls"
    awk '$NF == "total" {print $4; exit}' "$OUT/$1.strace"
    return
  fi
  if [[ -n ${CG_KEEP:-} ]]; then mkdir -p "$CG_KEEP"; cp "$OUT/$1.cg" "$CG_KEEP/$1.cg"; fi
  callgrind_annotate "$OUT/$1.cg" >"$OUT/$1.txt" 2>/dev/null
  awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/$1.txt"
}
few=$(count "$FEW")
many=$(count $((3 * FEW)))
if [[ ${CG_TOOL:-callgrind} == cprofile ]]; then
  "$PY" "$HERE/prof_diff.py" --per $((2 * FEW)) "$OUT/$FEW.prof" "$OUT/$((3 * FEW)).prof"
elif [[ ${CG_TOOL:-callgrind} == strace ]]; then
  echo "per push: $(awk -v n=$((2 * FEW)) '{printf "%.2f", $1 / n}' <<<"$((many - few))") system calls ($COURIER)"
  join -a1 -a2 -e0 -o 0,1.2,2.2 <(sort "$OUT/$FEW.calls") <(sort "$OUT/$((3 * FEW)).calls") \
    | awk -v n=$((2 * FEW)) '{d = ($3 - $2) / n; if (d > 0.005 || d < -0.005) printf "  %-20s %7.2f\n", $1, d}'
elif [[ ${CG_TOOL:-callgrind} == cpu && -n ${CG_IDLE:-} ]]; then
  echo "per idle second: $(awk -v d=$((many - few)) -v n=$((2 * FEW * CG_IDLE)) 'BEGIN {printf "%.2f", d / n / 1e6}') ms of CPU ($COURIER)"
elif [[ ${CG_TOOL:-callgrind} == cpu ]]; then
  echo "per push: $(awk -v d=$((many - few)) -v n=$((2 * FEW)) 'BEGIN {printf "%.1f", d / n / 1000}') us of CPU ($COURIER)"
elif [[ -n ${CG_IDLE:-} ]]; then
  echo "per idle second: $(( (many - few) / (2 * FEW * CG_IDLE) )) instructions ($COURIER)"
else
  echo "per push: $(( (many - few) / (2 * FEW) )) instructions ($COURIER)"
  if [[ -n ${CG_IDLE_RATE:-} ]]; then
    # The timers' work (CG_IDLE's instructions a second) is counted in proportion to the
    # pushes' wall time, which under valgrind on a busy machine varies from run to run:
    # taken out here at the measured rate (docs/perf-notes.md, twenty-fifth round).
    awk -v d=$((many - few)) -v n=$((2 * FEW)) -v r="$CG_IDLE_RATE" -v a="$(cat "$OUT/$FEW.secs")" \
      -v b="$(cat "$OUT/$((3 * FEW)).secs")" \
      'BEGIN {printf "per push without the timers (%d a second, %.1f s more of pushes): %d instructions\n", r, b - a, (d - r * (b - a)) / n}'
  fi
fi
