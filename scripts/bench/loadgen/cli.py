"""python scripts/bench/loadgen --base http://127.0.0.1:PORT --pid SERVER_PID [options]

Runs the yardstick's scenarios against one server and prints its rows. One JSON line per
scenario (and a last one, "rows", with every figure by name) goes to --out for
`make bench-compare`. Every scenario is bounded in messages and time, and the whole run
stops itself after --max-seconds. Loopback targets only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit

from . import rows, scenarios
from .measure import Meter
from .wire import Pool, Protocol


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="loadgen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--base", default="http://127.0.0.1:8080", help="the server (http://127.0.0.1:PORT)")
    a("--prefix", default="/api/v1")
    a("--label", default="courier")
    a("--pid", type=int, default=0, help="the server's PID: its RSS and CPU (from /proc)")
    a("--redis-pid", type=int, default=0, help="Redis's PID: its CPU")
    a("--worker-pid", type=int, default=0, help="courier worker's PID: its CPU")
    a("--scenarios", default="connect,push,throughput,fanout")
    a("--connect", default="5000", help="sockets to open, in steps kept open (e.g. 1000,5000)")
    a("--connect-concurrency", type=int, default=16, help="handshakes at a time")
    a("--connect-settle", type=float, default=2.0, help="seconds before RSS is read")
    a("--pairs", type=int, default=200, help="online sender -> recipient pairs (push, throughput)")
    a("--rates", default="500,2000", help="push rates, messages/s")
    a("--push-seconds", type=float, default=10)
    a("--messages", type=int, default=0, help="push messages (default rate * push-seconds)")
    a("--tp-concurrency", default="8,32,128", help="closed-loop senders; the best run with all delivered counts")
    a("--tp-seconds", type=float, default=5)
    a("--fanout", default="1000@50,1000@100", help="G@R: group size @ messages/s")
    a("--fanout-seconds", type=float, default=10)
    a("--fanout-senders", type=int, default=4)
    a("--http-connections", type=int, default=64, help="keep-alive connections of the open-loop senders")
    a("--register-concurrency", type=int, default=32)
    a("--loss-ms", type=float, default=5000, help="a frame later than this after its send counts as lost")
    a("--user-prefix", default="")
    a("--users-file", default="", help="take the users from this file (as --save-users wrote it) when it exists")
    a("--save-users", default="", help="write the users (with their tokens) to this file")
    a("--out", default="", help="append the JSON lines here too")
    a("--max-seconds", type=float, default=900, help="the whole run stops after this")
    a("--quiet-wait", type=float, default=0, help="wait at most this long before each scenario for other load to drop")
    a("--contended-pct", type=float, default=25, help="other load (%% of a core) that makes a scenario contended")
    a("--retries", type=int, default=0, help="run a contended scenario again, up to this many times")
    a("--pause", type=float, default=1.0, help="seconds between scenarios")
    a("--quiet", action="store_true")
    opt = p.parse_args(argv)
    u = urlsplit(opt.base)
    opt.host, opt.port = u.hostname or "127.0.0.1", u.port or 80
    if opt.host not in ("127.0.0.1", "localhost", "::1"):
        p.error("loopback targets only")
    return opt


def machine_info() -> dict:
    """What the figures were measured on: they move with the machine more than with the code."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    loop = "asyncio"
    try:
        import uvloop
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "loop": loop}


def _list(s: str) -> list[str]:
    return [x.strip() for x in str(s).split(",") if x.strip()]


class Runner:
    def __init__(self, opt) -> None:
        self.opt = opt
        self.results: list[dict] = []
        self.pids = {"server": opt.pid, "redis": opt.redis_pid, "worker": opt.worker_pid}
        self.pids = {k: v for k, v in self.pids.items() if v}
        self.run_seq = 0

    def emit(self, rec: dict) -> None:
        rec = {"label": self.opt.label, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **rec}
        self.results.append(rec)
        if self.opt.out:
            with open(self.opt.out, "a") as f:
                f.write(json.dumps(rec) + "\n")

    async def wait_quiet(self) -> int | None:
        end = time.monotonic() + self.opt.quiet_wait
        other = None
        while True:
            m = Meter(self.pids).start()
            await asyncio.sleep(1)
            other = m.stop()["other_cpu_pct"]
            if other is None or other < self.opt.contended_pct or time.monotonic() >= end:
                return other
            scenarios.log(self.opt, f"machine busy with other work ({other}% of a core); waiting")

    async def guarded(self, run):
        """Run a scenario; again while others' load disturbed it (--retries); emit the least
        disturbed attempt."""
        best = None
        others = []
        for attempt in range(1, 2 + self.opt.retries):
            before = await self.wait_quiet() if self.opt.quiet_wait > 0 else None
            self.run_seq += 1
            got = await run(self.run_seq)
            recs = got if isinstance(got, list) else [got]
            other = max((r["cpu"].get("other_cpu_pct") or 0) for r in recs)
            for r in recs:
                r["attempt"], r["other_cpu_before"] = attempt, before
            others.append(other)
            if best is None or other < best[1]:
                best = (recs, other)
            if other <= self.opt.contended_pct:
                break
            if attempt <= self.opt.retries:
                scenarios.log(self.opt, f"{recs[0]['scenario']}: other load {other}% of a core; running it again")
            await asyncio.sleep(self.opt.pause)
        assert best is not None
        for r in best[0]:
            r["contended"] = (r["cpu"].get("other_cpu_pct") or 0) > self.opt.contended_pct
            r["attempts_other_cpu_pct"] = others
            self.emit(r)
        return best[0]

    async def main(self) -> None:
        opt = self.opt
        sc = set(_list(opt.scenarios))
        ns = [int(x) for x in _list(opt.connect)] if "connect" in sc else []
        fans = [tuple(int(v) for v in x.split("@")) for x in _list(opt.fanout)] if "fanout" in sc else []
        need = max([1, *ns, *(2 * opt.pairs for _ in [0] if sc & {"push", "throughput"}), *(g for g, _ in fans)])
        pool = Pool(opt.host, opt.port, opt.http_connections, opt.prefix)
        reg_pool = Pool(opt.host, opt.port, opt.register_concurrency, opt.prefix)
        scenarios.log(opt, f"target {opt.base}{opt.prefix} label={opt.label} pid={opt.pid or '-'} users needed={need}")
        self.emit({"scenario": "machine", **machine_info()})
        users = await scenarios.prepare_users(opt, reg_pool, need)
        reg_pool.close()
        if ns:
            await self.guarded(lambda seq: scenarios.connect(opt, users, self.pids, ns))
            await asyncio.sleep(self.opt.pause)
        if sc & {"push", "throughput"}:
            pairs = [(2 * j, 2 * j + 1) for j in range(opt.pairs)]
            scenarios.log(opt, f"opening {2 * len(pairs)} sockets for {len(pairs)} pairs")
            socks, _, fail, err = await scenarios.open_many(opt, users, [i for p in pairs for i in p],
                                                            opt.connect_concurrency)
            if fail:
                raise RuntimeError(f"{fail} sockets of the pairs failed to open: {err}")
            await asyncio.sleep(0.5)
            try:
                if "push" in sc:
                    for rate in (int(x) for x in _list(opt.rates)):
                        await self.guarded(lambda seq, rate=rate: scenarios.push(opt, users, pool, pairs, rate,
                                                                                 self.pids, seq))
                        await asyncio.sleep(self.opt.pause)
                if "throughput" in sc:
                    tp = []
                    for c in (int(x) for x in _list(opt.tp_concurrency)):
                        tp += await self.guarded(lambda seq, c=c: scenarios.throughput(opt, users, pool, pairs, c,
                                                                                       self.pids, seq))
                        await asyncio.sleep(self.opt.pause)
                    ok = [r for r in tp if r["all_delivered"] and not r["http_errors"]]
                    best = max(ok or tp, key=lambda r: r["sends_per_s"])
                    self.emit({"scenario": "throughput_max", "concurrency": best["concurrency"],
                               "sends_per_s": best["sends_per_s"], "deliveries_per_s": best["deliveries_per_s"],
                               "all_delivered": bool(ok)})
            finally:
                await scenarios.close_all(socks)
            await asyncio.sleep(self.opt.pause)
        for g, r in fans:
            await self.guarded(lambda seq, g=g, r=r: scenarios.fanout(opt, users, pool, g, r, self.pids, seq))
            await asyncio.sleep(self.opt.pause)
        pool.close()
        self.emit({"scenario": "protocol", "binary": Protocol.binary, "unparsable": Protocol.unparsable,
                   "unexpected_close": Protocol.unexpected_close})
        self.emit({"scenario": "rows", "rows": rows.flat(self.results)})


def tools(argv: list[str]) -> int:
    """loadgen side-by-side [--label L] FILE...   the last rows of each label, side by side,
                                                 with the ratio to the fastest Python server
    loadgen compare A_FILE... -- B_FILE...       medians of A and B, and B/A (median of rounds)"""
    if argv[0] == "side-by-side":
        label = "courier"
        files = argv[1:]
        if files[:1] == ["--label"]:
            label, files = files[1], files[2:]
        runs = {k: v[-1] for k, v in rows.read_rows(files).items()}
        print(rows.side_by_side(runs, label))
        return 0
    if argv[0] == "compare" and "--" in argv:
        cut = argv.index("--")
        a = [r for v in rows.read_rows(argv[1:cut]).values() for r in v]
        b = [r for v in rows.read_rows(argv[cut + 1:]).values() for r in v]
        print(rows.compare(a, b))
        return 0
    print(tools.__doc__, file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("side-by-side", "compare"):
        sys.exit(tools(argv))
    if argv and argv[0] == "ceiling":
        from . import ceiling
        sys.exit(ceiling.main(argv[1:]))
    opt = parse(argv)
    try:
        import uvloop  # a dependency of Courier: cheaper callbacks, futures and socket reads
        uvloop.install()
    except ImportError:
        pass
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    except (ImportError, ValueError, OSError):
        pass
    runner = Runner(opt)

    async def bounded() -> None:
        await asyncio.wait_for(runner.main(), opt.max_seconds)

    code = 0
    try:
        asyncio.run(bounded())
    except TimeoutError:
        print(f"loadgen: --max-seconds {opt.max_seconds} reached", file=sys.stderr)
        code = 3
    except Exception as e:  # noqa: BLE001 - the rows measured so far are still printed
        print(f"loadgen failed: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    print(rows.table(runner.results, opt.label))
    proto = next((r for r in runner.results if r.get("scenario") == "protocol"), None)
    if proto and (proto["binary"] or proto["unparsable"] or proto["unexpected_close"]):
        print(f"protocol oddities: {proto}")
    sys.stdout.flush()
    os._exit(code)  # sockets still open at a time-out are not waited for


if __name__ == "__main__":
    main()
