"""What 1,000 inbox appends cost Redis, by entry size and command (docs/perf-notes.md,
third round). One script appends one entry with one explicit id to 1,000 streams, as
deliver.lua does for a group of 1,000; timed from the client (redis-py), 300 times each.

    .venv/bin/python scripts/bench/xadd_micro.py [redis://127.0.0.1:6379/14]

Uses (and empties) the given database: never point it at one that holds data.
"""
import sys
import time

import redis

VARIANTS = {
    "XADD MAXLEN ~, 200-byte entry": ("redis.call('XADD', KEYS[i], 'MAXLEN', '~', '10000', id, 'm', ARGV[2])", 200),
    "XADD MAXLEN ~, 12-byte entry": ("redis.call('XADD', KEYS[i], 'MAXLEN', '~', '10000', id, 'm', ARGV[2])", 12),
    "XADD without MAXLEN, 200 bytes": ("redis.call('XADD', KEYS[i], id, 'm', ARGV[2])", 200),
    "RPUSH, 200 bytes": ("redis.call('RPUSH', KEYS[i], ARGV[2])", 200),
}


def main(url: str) -> None:
    client = redis.Redis.from_url(url)
    keys = [f"stream:private:{i:032x}" for i in range(1000)]
    try:
        for name, (append, size) in VARIANTS.items():
            client.flushdb()
            script = client.register_script(f"local id = ARGV[1]\nfor i = 1, #KEYS do\n{append}\nend\nreturn 1")
            times = []
            for n in range(1, 301):
                started = time.perf_counter()
                script(keys=keys, args=[f"{n}-0", "x" * size])
                times.append(time.perf_counter() - started)
            times.sort()
            print(f"{name}: p50 {times[150] * 1e3:.2f} ms, p90 {times[270] * 1e3:.2f} ms")
    finally:
        client.flushdb()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/14")
