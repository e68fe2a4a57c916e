"""Courier's own load generator: the yardstick's rows (push latency, closed-loop sends with
every message delivered, group fan-out, connects, memory per socket) against any server of
Courier's HTTP + WebSocket API. `python scripts/bench/loadgen --help`; docs/perf-notes.md
says how `make bench` and `make bench-compare` use it."""
