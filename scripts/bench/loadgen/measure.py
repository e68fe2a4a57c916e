"""Percentiles, and the CPU of the server, Redis, the load generator and the machine."""
from __future__ import annotations

import math
import os

from .wire import now

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def pcts(values, n: int | None = None) -> dict:
    """p50/p90/p99/max of the first n values (ms), rounded to 0.01; the rank is ceil(p*n)."""
    a = sorted(values if n is None else values[:n])
    n = len(a)
    if not n:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}

    def q(p: float) -> float:
        return round(a[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))], 2)

    return {"n": n, "p50": q(50), "p90": q(90), "p99": q(99), "max": round(a[-1], 2)}


def rss_kb(pid: int) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid: int) -> float | None:
    """utime + stime of a process, seconds."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[3] + v[4], sum(v)


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Meter:
    """CPU over an interval, in percent of ONE core (a 2-core machine tops out at 200):
    server, Redis, worker, the load generator, the machine, and "other" (the machine less
    those: other processes, and kernel time for loopback TCP charged to no process)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def start(self) -> Meter:
        self.t = now()
        self.before = {k: cpu_s(p) for k, p in self.pids.items()}
        self.self0 = self_cpu()
        self.sys0 = machine()
        return self

    def stop(self) -> dict:
        wall = now() - self.t
        out: dict = {"wall_s": round(wall, 2)}
        known = 0.0
        for k, pid in self.pids.items():
            a, b = self.before.get(k), cpu_s(pid)
            pct = None if a is None or b is None or wall <= 0 else round((b - a) / wall * 100)
            out[f"{k}_cpu_pct"] = pct
            known += pct or 0
        gen = round((self_cpu() - self.self0) / wall * 100) if wall > 0 else None
        out["loadgen_cpu_pct"] = gen
        out["loadgen_cpu_s"] = round(self_cpu() - self.self0, 3)
        idle1, total1 = machine()
        dt = total1 - self.sys0[1]
        mach = round((1 - (idle1 - self.sys0[0]) / dt) * NCPU * 100) if dt > 0 else None
        out["machine_cpu_pct"] = mach
        out["other_cpu_pct"] = None if mach is None else mach - round(known) - (gen or 0)
        return out
