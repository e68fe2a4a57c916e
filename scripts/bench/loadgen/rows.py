"""The yardstick's rows: the figures each run is judged by, as a flat dict (for comparing
runs) and as a table (for reading one)."""
from __future__ import annotations

import statistics


def flat(recs: list[dict]) -> dict[str, float]:
    """The run's figures by name (only those it measured): what make bench-compare compares."""
    out: dict[str, float] = {}
    for r in recs:
        sc = r.get("scenario")
        if sc == "push":
            k = f"push_{r['rate']}"
            out[f"{k}_p50_ms"] = r["latency_ms"]["p50"]
            out[f"{k}_p99_ms"] = r["latency_ms"]["p99"]
            out[f"{k}_lost"] = r["lost"] + r["http_errors"]
        elif sc == "throughput_max":
            out["sends_per_s"] = r["sends_per_s"]
            out["sends_all_delivered"] = 1 if r["all_delivered"] else 0
        elif sc == "fanout":
            k = f"fanout_{r['group_size']}_{r['rate']}"
            out[f"{k}_deliveries_per_s"] = r["deliveries_per_s"]
            out[f"{k}_last_p50_ms"] = r["last_member_ms"]["p50"]
            out[f"{k}_last_p99_ms"] = r["last_member_ms"]["p99"]
            out[f"{k}_lost"] = r["lost_deliveries"]  # late ones (over loss_ms) included
        elif sc == "connect":
            k = f"connect_{r['n']}"
            out[f"{k}_s"] = r.get("seconds")  # (load.js's records, read by side-by-side, have none)
            out[f"{k}_hs_p50_ms"] = r["handshake_ms"]["p50"]
            out[f"{k}_hs_p99_ms"] = r["handshake_ms"]["p99"]
            out[f"{k}_errors"] = r["n"] - r["open_after_settle"]  # failed, or closed before the settle
            out[f"kb_per_socket_{r['n']}"] = r["rss_per_conn_kb"]
    return {k: v for k, v in out.items() if v is not None}


def better(key: str) -> int:
    """+1 if a higher figure is better, -1 if lower, 0 for counts that should be 0."""
    if key.endswith(("_lost", "_errors", "all_delivered")):
        return 0
    if key.endswith("per_s"):
        return 1
    return -1


def fmt(x, d: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) < 100:
        return f"{x:.{d}f}".rstrip("0").rstrip(".") if d else str(round(x))
    return f"{round(x):,}"


def kilo(x) -> str:
    return "-" if x is None else f"{x / 1000:.1f}k"


def table(recs: list[dict], label: str = "") -> str:
    """The yardstick's rows, one line each, then the CPU each scenario took."""
    rows: list[tuple[str, str]] = []
    by = {}
    for r in recs:
        by.setdefault(r.get("scenario"), []).append(r)
    for r in by.get("push", []):
        lat = r["latency_ms"]
        errors = f", {r['http_errors']} errors" if r["http_errors"] else ""
        rows.append((f"push {r['rate']}/s: p50 / p99",
                     f"{fmt(lat['p50'], 2)} / {fmt(lat['p99'], 2)} ms, {r['lost']} lost"
                     f"{errors} ({r['accepted']} accepted)"))
    tmax = (by.get("throughput_max") or [None])[0]
    if tmax:
        runs = ", ".join(f"C={t['concurrency']}: {fmt(t['sends_per_s'])}"
                         + ("" if t["all_delivered"] else f" ({t['lost']} lost)") for t in by.get("throughput", []))
        rows.append(("max sends/s, closed loop, every message delivered (C)",
                     f"{fmt(tmax['sends_per_s'])} (C={tmax['concurrency']})"
                     f"{'' if tmax['all_delivered'] else ' NOT ALL DELIVERED'}  [{runs}]"))
    for r in by.get("fanout", []):
        last = r["last_member_ms"]
        lost = r["lost_deliveries"]  # expected - on time: the late ones are in it
        lost_s = f", {lost} lost or late" if lost else ""
        errors = f", {r['http_errors']} errors" if r["http_errors"] else ""
        rows.append((f"fan-out {r['group_size']} @ {r['rate']}/s: deliveries/s · last-member p50 / p99",
                     f"{kilo(r['deliveries_per_s'])} (offered {kilo(r['offered_deliveries_per_s'])}) · "
                     f"{fmt(last['p50'])} / {fmt(last['p99'])} ms, {r['delivered']}/{r['expected_deliveries']} "
                     f"delivered on time{lost_s}{errors}"))
    for r in by.get("connect", []):
        hs = r["handshake_ms"]
        errors = r["n"] - r["open_after_settle"]  # of all n: failed, or closed before the settle
        first = f" ({r['first_error']})" if r["first_error"] else ""
        rows.append((f"connect {r['n']}: time · handshake p50 / p99 · errors",
                     f"{fmt(r['seconds'], 2)} s ({fmt(r['conns_per_s'])}/s) · {fmt(hs['p50'])} / {fmt(hs['p99'])} ms · "
                     f"{errors} errors{first}"))
        rows.append((f"memory per open socket ({r['n']}): RSS delta / sockets",
                     f"{fmt(r['rss_per_conn_kb'])} KB (server RSS {fmt((r['rss_before_kb'] or 0) / 1024, 0)} -> "
                     f"{fmt((r['rss_after_kb'] or 0) / 1024, 0)} MB, {r['open_after_settle']} open)"))
    w = max((len(a) for a, _ in rows), default=0)
    out = []
    m = (by.get("machine") or [None])[0]
    if m:
        out.append(f"machine: {m['cores']} cores ({m['cpu_model']}), Linux {m['kernel']}; load generator on Python "
                   f"{m['python']}, {m['loop']}; everything on loopback, sharing the cores")
    out += [f"{'row'.ljust(w)} | {label or 'figures'}", f"{'-' * w}-|-{'-' * 40}"]
    out += [f"{a.ljust(w)} | {b}" for a, b in rows]
    cpu_rows = [r for r in recs if isinstance(r.get("cpu"), dict)]
    if cpu_rows:
        out.append("")
        out.append("CPU during each scenario, % of one core "
                   "(other = machine - server - redis - worker - load generator)")
        for r in cpu_rows:
            c = r["cpu"]
            name = {"connect": lambda r: f"connect {r['n']}", "push": lambda r: f"push {r['rate']}/s",
                    "throughput": lambda r: f"throughput C={r['concurrency']}",
                    "fanout": lambda r: f"fan-out {r['group_size']} @ {r['rate']}/s"}[r["scenario"]](r)
            figures = "  ".join(f"{k} {fmt(c.get(k + '_cpu_pct'))}"
                                for k in ("server", "worker", "redis", "loadgen", "other"))
            out.append(f"  {name.ljust(22)} {figures}  (machine {fmt(c.get('machine_cpu_pct'))})"
                       f"{'  contended' if r.get('contended') else ''}")
    ceiling = loadgen_ceiling(recs)
    if ceiling:
        out.append("")
        out.append(ceiling)
    return "\n".join(out)


def loadgen_ceiling(recs: list[dict]) -> str:
    """The load generator's own cost, from its CPU time in the busiest scenarios: CPU per frame
    taken in (fan-out) and per closed-loop send (a send, its answer and its frame), everything
    it did during the scenario included (its timer loop, its sends): an upper bound of the
    cost, close at high rates, so its ceiling is at least that. `loadgen ceiling` measures the
    cost per frame and per request alone."""
    parts = []
    fr = [r for r in recs if r.get("scenario") == "fanout" and r["cpu"].get("loadgen_cpu_s")]
    if fr:
        r = max(fr, key=lambda r: r["delivered"])
        frames = r["delivered"] + r["late_over_loss_ms"]
        if frames:
            us = r["cpu"]["loadgen_cpu_s"] / frames * 1e6
            parts.append(f"{us:.1f} us CPU per frame received, all its work included (fan-out {r['group_size']} "
                         f"@ {r['rate']}/s: ceiling at least ~{1e6 / us / 1000:.0f}k frames/s per core)")
    tr = [r for r in recs if r.get("scenario") == "throughput" and r["cpu"].get("loadgen_cpu_s")]
    if tr:
        r = max(tr, key=lambda r: r["accepted"])
        if r["accepted"]:
            us = r["cpu"]["loadgen_cpu_s"] / r["accepted"] * 1e6
            parts.append(f"{us:.1f} us per closed-loop send with its frame (C={r['concurrency']}: "
                         f"ceiling at least ~{1e6 / us:,.0f} sends/s per core)")
    return ("load generator: " + "; ".join(parts)) if parts else ""


def compare(a_runs: list[dict[str, float]], b_runs: list[dict[str, float]], a_name: str = "A",
            b_name: str = "B") -> str:
    """Each figure's median over the rounds for A and B, and the median of the rounds' ratios
    B/A (round i's B against round i's A: they ran one after the other)."""
    keys = [k for k in _order(a_runs + b_runs)]
    lines = [f"{'figure'.ljust(28)} {('median ' + a_name).rjust(14)} {('median ' + b_name).rjust(14)}"
             f" {'B/A (median of rounds)'.rjust(24)}  rounds B/A"]
    for k in keys:
        av = [r[k] for r in a_runs if k in r]
        bv = [r[k] for r in b_runs if k in r]
        if not av or not bv:
            continue
        ratios = [b[k] / a[k] for a, b in zip(a_runs, b_runs, strict=False) if k in a and k in b and a[k]]
        way = better(k)
        hint = "" if way == 0 else (" (higher is better)" if way > 0 else " (lower is better)")
        ratio = f"{statistics.median(ratios):.3f}" if ratios else "-"
        am, bm = fmt(statistics.median(av), 2), fmt(statistics.median(bv), 2)
        each = " ".join(f"{x:.2f}" for x in ratios)
        lines.append(f"{k.ljust(28)} {am.rjust(14)} {bm.rjust(14)} {ratio.rjust(24)}  {each}{hint}")
    return "\n".join(lines)


_ROW_ORDER = ("push_", "sends_", "fanout_", "connect_", "kb_per_socket")


def _order(runs: list[dict]) -> list[str]:
    """Every figure's name, in the yardstick's order of rows (push, sends, fan-out, connect,
    memory), each row's figures as first seen."""
    seen: dict[str, None] = {}
    for r in runs:
        for k in r:
            seen.setdefault(k, None)
    rank = {k: next((i for i, p in enumerate(_ROW_ORDER) if k.startswith(p)), len(_ROW_ORDER)) for k in seen}
    return sorted(seen, key=lambda k: rank[k])  # stable: first seen within a row


def read_rows(paths: list[str]) -> dict[str, list[dict[str, float]]]:
    """Every "rows" record of the JSON-lines files, by label, in the order written; for a label
    with none (JSON lines of the shared bench's load.js, as in docs/perf/runs/), the figures
    of all its scenario records."""
    import json

    out: dict[str, list[dict[str, float]]] = {}
    scenario_recs: dict[str, list[dict]] = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    label = rec.get("label", "")
                    if rec.get("scenario") == "rows":
                        out.setdefault(label, []).append(rec["rows"])
                    else:
                        scenario_recs.setdefault(label, []).append(rec)
    for label, recs in scenario_recs.items():
        if label not in out:
            out[label] = [flat(recs)]
    return out


def fastest(values: dict[str, float], key: str) -> tuple[str, float] | None:
    """The label with the best figure of `key` among `values`, and the figure."""
    way = better(key)
    if way == 0 or not values:
        return None
    label = (max if way > 0 else min)(values, key=lambda k: values[k])
    return label, values[label]


def side_by_side(runs: dict[str, dict[str, float]], label: str = "courier") -> str:
    """Each figure of each server, and `label`'s figure divided by the fastest Python server's
    (labels ending in _py) of the same run: > 1 is more of the figure (better for a rate,
    worse for a latency)."""
    labels = list(runs)
    python = [x for x in labels if x.endswith("_py")]
    keys = _order(list(runs.values()))
    w = max(len(k) for k in keys) if keys else 10
    head = f"{'figure'.ljust(w)} " + " ".join(x.rjust(12) for x in labels)
    if python and label in runs:
        head += f"  {label} / fastest Python server"
    lines = [head]
    for k in keys:
        cells = " ".join(fmt(runs[x].get(k), 2).rjust(12) for x in labels)
        ratio = ""
        best = fastest({x: runs[x][k] for x in python if runs[x].get(k) is not None}, k)
        if best and label in runs and runs[label].get(k) is not None and best[1]:
            ratio = f"  {runs[label][k] / best[1]:.2f} ({best[0]}; {'higher' if better(k) > 0 else 'lower'} is better)"
        lines.append(f"{k.ljust(w)} {cells}{ratio}")
    return "\n".join(lines)
