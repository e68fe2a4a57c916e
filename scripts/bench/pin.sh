#!/usr/bin/env bash
# pin.sh CPUS COMMAND...: exec COMMAND on those CPUs (a taskset list), or as it is when CPUS is
# empty. Its PID stays COMMAND's (exec all the way), so callers may wait on it and signal it.
cpus=$1; shift
if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; fi
exec "$@"
