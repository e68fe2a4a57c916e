"""The yardstick's scenarios, against any server of the "im" protocol (Courier's API):

  connect     open N sockets (distinct users), HANDSHAKES at a time: time to open them all,
              handshake p50/p99, errors, and the server's RSS per open socket
  push        K online sender->recipient pairs, M private messages at a fixed open-loop rate
              R: POST -> frame latency; "lost" = answered 201 but no frame within loss_ms
  throughput  closed loop, C senders each on its own connection for T s: accepted sends/s,
              and every accepted message checked delivered (exactly once) afterwards
  fanout      a group of G online members, S senders posting at open-loop rate R:
              deliveries/s, latency to the LAST member of each message

Latency: time.perf_counter() just before the request is handed to the HTTP pool is written
into the message's content ("bench|tag|seq|t"), and compared with the time the recipient's
socket read the frame; one process, one monotonic clock. A frame is matched by its tag, so
frames of an earlier scenario or attempt are never counted.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import string

import orjson

from .measure import Meter, pcts, rss_kb
from .wire import Hub, Pool, Protocol, WsConn, now, open_ws

QUIET_GAP = 2.0  # s with no frame and no answer: the server went idle, the rest is lost


def log(opt, *a) -> None:
    if not opt.quiet:
        import sys
        import time
        print(f"[loadgen {time.strftime('%H:%M:%S', time.gmtime())}]", *a, file=sys.stderr, flush=True)


def content_of(payload: bytes) -> list[bytes] | None:
    """The parts of a bench message's content (b"bench", tag, seq, t) in a pushed frame, found
    without parsing the JSON: bench contents are ASCII with nothing to escape."""
    i = payload.find(b"bench|")
    if i < 0:
        return None
    j = payload.find(b'"', i)
    return payload[i:j].split(b"|")


class Users:
    def __init__(self, ids: list[str], tokens: list[str]) -> None:
        self.ids = ids
        self.tokens = tokens


async def prepare_users(opt, pool: Pool, count: int) -> Users:
    """Register and log in `count` users (not timed); or take them from --users-file
    ([{username, password[, user_id, token]}], logging in those without a token)."""
    prefix = opt.user_prefix or "b" + "".join(random.choices(string.ascii_lowercase + string.digits, k=6)) + "_"
    names = [(f"{prefix}{i}", f"pw-{prefix}{i}") for i in range(count)]
    ids: list[str] = [""] * count
    tokens: list[str] = [""] * count
    kept: list[dict] = []
    if opt.users_file and os.path.exists(opt.users_file):
        with open(opt.users_file) as f:
            kept = json.load(f)
        if len(kept) < count:
            raise RuntimeError(f"{opt.users_file} has {len(kept)} users, {count} are needed")
        for i, u in enumerate(kept[:count]):
            names[i] = (u["username"], u["password"])
            ids[i], tokens[i] = u.get("user_id", ""), u.get("token", "")
    t0 = now()

    async def call(path: str, body: dict) -> dict:
        for attempt in range(6):
            status, raw = await pool.request("POST", path, orjson.dumps(body))
            if status in (200, 201):
                return orjson.loads(raw)
            if status not in (429, 503) or attempt == 5:
                raise RuntimeError(f"{path} {body.get('username')}: {status} {raw[:200]!r}")
            await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError

    async def one(i: int) -> None:
        if tokens[i] and ids[i]:
            return
        name, password = names[i]
        if not kept:
            ids[i] = (await call("/users/register", {"username": name, "password": password})).get("user_id", "")
        login = await call("/users/login", {"username": name, "password": password})
        ids[i] = ids[i] or login["user_id"]
        tokens[i] = login["token"]

    await pmap(range(count), opt.register_concurrency, one)
    log(opt, f"{'logged in' if kept else 'registered and logged in'} {count} users in {now() - t0:.1f} s (not timed)")
    if opt.save_users:
        with open(opt.save_users, "w") as f:
            json.dump([{"username": n, "password": p, "user_id": ids[i], "token": tokens[i]}
                       for i, (n, p) in enumerate(names)], f)
    return Users(ids, tokens)


async def pmap(items, concurrency: int, fn) -> None:
    it = iter(items)

    async def worker() -> None:
        for x in it:
            await fn(x)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_many(opt, users: Users, idxs, concurrency: int):
    socks: dict[int, WsConn] = {}
    lat: list[float] = []
    fail = 0
    first_err = None

    async def one(i: int) -> None:
        nonlocal fail, first_err
        try:
            ws, ms = await open_ws(opt.host, opt.port, users.tokens[i], i)
            socks[i] = ws
            lat.append(ms)
        except Exception as e:  # noqa: BLE001 - every failure is counted and the first one shown
            fail += 1
            if first_err is None:
                first_err = f"{type(e).__name__}: {e}"

    await pmap(idxs, concurrency, one)
    return socks, lat, fail, first_err


async def close_all(socks: dict[int, WsConn]) -> None:
    await asyncio.gather(*(ws.close() for ws in socks.values()))


def open_count(socks: dict[int, WsConn]) -> int:
    return sum(1 for ws in socks.values() if ws.open)


async def open_loop(rate: float, total: int, send, max_s: float) -> tuple[int, dict]:
    """Call send(i) at t0 + i/rate (catching up when the timer is late); the lag's percentiles."""
    t0 = now() + 0.02
    lag: list[float] = []
    i = 0
    while i < total:
        t = now()
        due = min(total, int((t - t0) * rate) + 1)
        while i < due:
            lag.append((now() - (t0 + i / rate)) * 1000)
            send(i)
            i += 1
        if t - t0 > max_s:
            break
        await asyncio.sleep(0.001)
    return i, pcts(lag)


async def connect(opt, users: Users, meter_pids: dict, ns: list[int]) -> list[dict]:
    """Open sockets up to each N in turn, keeping them open, so RSS per socket = (RSS with N
    open after a settle - RSS before the first) / N is not flattered by a freed batch."""
    socks: dict[int, WsConn] = {}
    recs = []
    rss_before = rss_kb(opt.pid)
    try:
        for n in ns:
            start = len(socks)
            log(opt, f"connect: opening sockets {start + 1}..{n} ({opt.connect_concurrency} handshakes at a time)")
            m = Meter(meter_pids).start()
            t0 = now()
            new, lat, fail, err = await open_many(opt, users, range(start, n), opt.connect_concurrency)
            took = now() - t0
            cpu = m.stop()
            socks.update(new)
            await asyncio.sleep(opt.connect_settle)
            still = open_count(socks)
            rss_after = rss_kb(opt.pid)
            recs.append({
                "scenario": "connect", "n": n, "opened_now": n - start, "ok": len(lat), "fail": fail,
                "first_error": err, "open_after_settle": still, "seconds": round(took, 2),
                "conns_per_s": round(len(lat) / took) if took > 0 else None,
                "handshake_ms": pcts(lat), "rss_before_kb": rss_before, "rss_after_kb": rss_after,
                "rss_per_conn_kb": round((rss_after - rss_before) / still, 1)
                if rss_before is not None and rss_after is not None and still else None,
                "cpu": cpu,
            })
    finally:
        await close_all(socks)
    return recs


def _send_bytes(pool: Pool, path: str, token: str, body_head: bytes) -> tuple[bytes, bytes]:
    """A request's bytes up to its Content-Length value, and its body's start; the rest is
    b"%d|%.6f\"}" % (seq, t): one formatting per message."""
    head = pool.build("POST", path, None, token)[:-2]  # without the blank line
    return head + b"Content-Type: application/json\r\nContent-Length: ", body_head


def _message(head: bytes, body_head: bytes, seq: int, t: float) -> bytes:
    body = body_head + b'%d|%.6f"}' % (seq, t)
    return head + b"%d\r\n\r\n" % len(body) + body


async def push(opt, users: Users, pool: Pool, pairs: list[tuple[int, int]], rate: int, meter_pids: dict,
               run_seq: int) -> dict:
    k = len(pairs)
    total = opt.messages or round(rate * opt.push_seconds)
    tag = f"p{rate}x{run_seq}"
    tagb = tag.encode()
    log(opt, f"push: {total} messages at {rate}/s over {k} pairs")
    recv_lat: list[float | None] = [None] * total
    accepted = bytearray(total)
    http_lat: list[float] = []
    st = {"acc": 0, "err": 0, "first_err": None, "dup": 0, "misrouted": 0, "echo": 0, "recv": 0,
          "last_resp": 0.0, "last_frame": 0.0}
    heads = [_send_bytes(pool, "/messages", users.tokens[s], b'{"to_user_id":' + orjson.dumps(users.ids[r])
                         + b',"content":"bench|' + tagb + b"|") for s, r in pairs]

    def on_frame(idx: int, payload: bytes, t: float) -> None:
        parts = content_of(payload)
        if parts is None or len(parts) != 4 or parts[1] != tagb:
            return
        seq = int(parts[2])
        s, r = pairs[seq % k]
        if idx == s:
            st["echo"] += 1
            return
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            Protocol.unparsable += 1
            return
        if idx != r or msg.get("to_user_id") != users.ids[r] or msg.get("type") != "private":
            st["misrouted"] += 1
            return
        if recv_lat[seq] is not None:
            st["dup"] += 1
            return
        recv_lat[seq] = (t - float(parts[3])) * 1000
        st["recv"] += 1
        st["last_frame"] = t

    def done(seq: int, t: float, fut: asyncio.Future) -> None:
        e = now()
        st["last_resp"] = e
        exc = fut.exception()
        if exc is not None:
            st["err"] += 1
            st["first_err"] = st["first_err"] or f"{type(exc).__name__}: {exc}"
            return
        http_lat.append((e - t) * 1000)
        status, raw = fut.result()
        if status == 201:
            accepted[seq] = 1
            st["acc"] += 1
        else:
            st["err"] += 1
            st["first_err"] = st["first_err"] or f"{status} {raw[:120]!r}"

    loop = asyncio.get_running_loop()

    def send(seq: int) -> None:
        head, body_head = heads[seq % k]
        t = now()
        fut = loop.create_task(pool.send(_message(head, body_head, seq, t)))
        fut.add_done_callback(lambda f, seq=seq, t=t: done(seq, t, f))

    Hub.on_frame = on_frame
    m = Meter(meter_pids).start()
    issued, lag = await open_loop(rate, total, send, total / rate * 3 + 10)
    send_end = now()
    await _settle(opt, st, lambda: st["acc"] + st["err"] >= issued, lambda: st["recv"] >= st["acc"],
                  lambda: max(st["last_frame"], st["last_resp"]), send_end)
    cpu = m.stop()
    Hub.on_frame = _noop
    lat: list[float] = []
    lost = late = 0
    for i in range(issued):
        if not accepted[i]:
            continue
        v = recv_lat[i]
        if v is None:
            lost += 1
        elif v > opt.loss_ms:
            late += 1
            lost += 1
        else:
            lat.append(v)
    return {
        "scenario": "push", "rate": rate, "pairs": k, "messages": total, "issued": issued,
        "accepted": st["acc"], "http_errors": st["err"], "first_error": st["first_err"],
        "delivered": st["recv"], "lost": lost, "late_over_loss_ms": late, "duplicates": st["dup"],
        "misrouted": st["misrouted"], "echo_to_sender": st["echo"],
        "latency_ms": pcts(lat), "http_ms": pcts(http_lat), "gen_lag_ms": lag,
        "achieved_send_rate": round(issued / max(1e-9, send_end - m.t)), "cpu": cpu,
    }


def _noop(idx: int, payload: bytes, t: float) -> None:
    pass


async def _settle(opt, st, answered, delivered, last_activity, send_end: float) -> None:
    """Wait for the answers, then for the deliveries: bounded by loss_ms after the last answer,
    and cut short when nothing has arrived for QUIET_GAP s (the rest is lost)."""
    deadline = send_end + opt.loss_ms / 1000 + 30
    while not answered() and now() < deadline:
        await asyncio.sleep(0.01)
    d_deadline = max(now(), st["last_resp"]) + opt.loss_ms / 1000
    while not delivered() and now() < d_deadline and now() - last_activity() < QUIET_GAP:
        await asyncio.sleep(0.01)


async def throughput(opt, users: Users, pool: Pool, pairs: list[tuple[int, int]], c: int, meter_pids: dict,
                     run_seq: int) -> dict:
    k = len(pairs)
    secs = opt.tp_seconds
    tag = f"t{c}x{run_seq}"
    tagb = tag.encode()
    log(opt, f"throughput: {c} senders in a closed loop for {secs} s")
    seen = bytearray(1 << 16)
    lat: list[float] = []
    st = {"recv": 0, "dup": 0, "echo": 0, "last": 0.0, "last_resp": 0.0}
    senders = {s for s, _ in pairs}
    heads = [_send_bytes(pool, "/messages", users.tokens[s], b'{"to_user_id":' + orjson.dumps(users.ids[r])
                         + b',"content":"bench|' + tagb + b"|") for s, r in pairs]

    def on_frame(idx: int, payload: bytes, t: float) -> None:
        parts = content_of(payload)
        if parts is None or len(parts) != 4 or parts[1] != tagb:
            return
        seq = int(parts[2])
        if idx in senders and idx == pairs[seq % k][0]:
            st["echo"] += 1
            return
        if seq >= len(seen):
            seen.extend(bytes(seq + 1 - len(seen) + (1 << 16)))
        if seen[seq]:
            st["dup"] += 1
            return
        seen[seq] = 1
        st["recv"] += 1
        st["last"] = t
        lat.append((t - float(parts[3])) * 1000)

    conns = [await pool.connect() for _ in range(c)]
    acc_seqs: list[int] = []
    counters = {"seq": 0, "acc": 0, "err": 0, "first_err": None}

    async def sender(conn) -> None:
        while now() < stop_at:
            seq = counters["seq"]
            counters["seq"] = seq + 1
            head, body_head = heads[seq % k]
            t = now()
            try:
                status, raw = await conn.request(_message(head, body_head, seq, t))
            except Exception as e:  # noqa: BLE001
                counters["err"] += 1
                counters["first_err"] = counters["first_err"] or f"{type(e).__name__}: {e}"
                conn.close()
                await asyncio.sleep(0.005)
                try:
                    conn = await pool.connect()
                except OSError:
                    return
                continue
            if status == 201:
                counters["acc"] += 1
                acc_seqs.append(seq)
            else:
                counters["err"] += 1
                counters["first_err"] = counters["first_err"] or f"{status} {raw[:120]!r}"
        conns.append(conn)

    Hub.on_frame = on_frame
    m = Meter(meter_pids).start()
    t0 = now()
    stop_at = t0 + secs
    await asyncio.gather(*(sender(conns.pop()) for _ in range(c)))
    send_end = now()
    st["last_resp"] = send_end
    await _settle(opt, st, lambda: True, lambda: st["recv"] >= counters["acc"], lambda: max(st["last"], send_end),
                  send_end)
    cpu = m.stop()
    Hub.on_frame = _noop
    for conn in conns:
        conn.close()
    lost = sum(1 for s in acc_seqs if s >= len(seen) or not seen[s])
    late = sum(1 for v in lat if v > opt.loss_ms)
    send_s = send_end - t0
    return {
        "scenario": "throughput", "concurrency": c, "pairs": k, "seconds": round(send_s, 2),
        "accepted": counters["acc"], "http_errors": counters["err"], "first_error": counters["first_err"],
        "delivered": st["recv"], "lost": lost + late, "duplicates": st["dup"], "echo_to_sender": st["echo"],
        "all_delivered": lost + late == 0 and st["dup"] == 0,
        "sends_per_s": round(counters["acc"] / send_s),
        "deliveries_per_s": round(st["recv"] / (st["last"] - t0)) if st["recv"] else 0,
        "delivery_tail_ms": round((st["last"] - send_end) * 1000) if st["recv"] else None,
        "latency_ms": pcts(lat), "cpu": cpu,
    }


async def fanout(opt, users: Users, pool: Pool, g: int, rate: int, meter_pids: dict, run_seq: int) -> dict:
    s_count = max(1, min(opt.fanout_senders, g - 1))
    total = max(1, round(rate * opt.fanout_seconds))
    tag = f"g{g}r{rate}x{run_seq}"
    tagb = tag.encode()
    log(opt, f"fanout: group of {g}, {total} messages at {rate}/s from {s_count} senders "
             f"(offered {rate * (g - 1)} deliveries/s)")
    socks, _, fail, open_err = await open_many(opt, users, range(g), opt.connect_concurrency)
    if fail:
        log(opt, f"fanout: {fail} sockets failed to open: {open_err}")
    status, raw = await pool.request("POST", "/groups", orjson.dumps(
        {"name": f"bench-{tag}", "member_ids": users.ids[1:g]}), users.tokens[0])
    if status != 201:
        await close_all(socks)
        raise RuntimeError(f"create group: {status} {raw[:300]!r}")
    gid = orjson.loads(raw)["group_id"]
    gidb = orjson.dumps(gid)
    senders = list(range(1, 1 + s_count))
    expect_per = g - 1  # every member but the sender, the creator included
    cnt = [0] * total
    last_lat = [0.0] * total
    accepted = bytearray(total)
    all_lat: list[float] = []
    loss_ms = opt.loss_ms
    st = {"acc": 0, "err": 0, "first_err": None, "recv": 0, "echo": 0, "late": 0, "wrong_group": 0,
          "last_resp": 0.0, "last_delivery": 0.0, "last_any": 0.0}

    def on_frame(idx: int, payload: bytes, t: float) -> None:
        parts = content_of(payload)
        if parts is None or len(parts) != 4 or parts[1] != tagb:
            return
        seq = int(parts[2])
        if idx == senders[seq % s_count]:
            st["echo"] += 1
            return
        if gidb not in payload:
            st["wrong_group"] += 1
        v = (t - float(parts[3])) * 1000
        st["last_any"] = t
        if v > loss_ms:
            st["late"] += 1
            return
        cnt[seq] += 1
        st["recv"] += 1
        st["last_delivery"] = t
        if v > last_lat[seq]:
            last_lat[seq] = v
        all_lat.append(v)

    def done(seq: int, fut: asyncio.Future) -> None:
        st["last_resp"] = now()
        exc = fut.exception()
        if exc is not None:
            st["err"] += 1
            st["first_err"] = st["first_err"] or f"{type(exc).__name__}: {exc}"
            return
        status, raw = fut.result()
        if status == 201:
            accepted[seq] = 1
            st["acc"] += 1
        else:
            st["err"] += 1
            st["first_err"] = st["first_err"] or f"{status} {raw[:120]!r}"

    heads = [_send_bytes(pool, f"/groups/{gid}/messages", users.tokens[s], b'{"content":"bench|' + tagb + b"|")
             for s in senders]
    loop = asyncio.get_running_loop()

    def send(seq: int) -> None:
        head, body_head = heads[seq % s_count]
        fut = loop.create_task(pool.send(_message(head, body_head, seq, now())))
        fut.add_done_callback(lambda f, seq=seq: done(seq, f))

    Hub.on_frame = on_frame
    m = Meter(meter_pids).start()
    t0 = m.t
    issued, lag = await open_loop(rate, total, send, total / rate * 3 + 10)
    send_end = now()
    await _settle(opt, st, lambda: st["acc"] + st["err"] >= issued, lambda: st["recv"] >= st["acc"] * expect_per,
                  lambda: max(st["last_any"], st["last_resp"]), send_end)
    cpu = m.stop()
    Hub.on_frame = _noop
    expected = st["acc"] * expect_per
    full: list[float] = []
    partial = 0
    for i in range(issued):
        if accepted[i]:
            if cnt[i] >= expect_per:
                full.append(last_lat[i])
            else:
                partial += 1
    await close_all(socks)
    frames = st["recv"] + st["late"]
    return {
        "scenario": "fanout", "group_size": g, "rate": rate, "senders": s_count, "messages": total,
        "issued": issued, "accepted": st["acc"], "http_errors": st["err"], "first_error": st["first_err"],
        "online": len(socks), "expected_deliveries": expected, "delivered": st["recv"],
        "lost_deliveries": expected - st["recv"], "late_over_loss_ms": st["late"],
        "messages_not_fully_delivered": partial, "echo_to_sender": st["echo"], "wrong_group": st["wrong_group"],
        "offered_deliveries_per_s": rate * expect_per,
        "deliveries_per_s": round(frames / (st["last_any"] - t0)) if frames else 0,
        "on_time_deliveries_per_s": round(st["recv"] / (st["last_delivery"] - t0)) if st["recv"] else 0,
        "last_member_ms": pcts(full), "any_member_ms": pcts(all_lat), "gen_lag_ms": lag, "cpu": cpu,
        # Which messages make the tail (a start-up transient shows as low numbers here).
        "slowest_last_member": [[i, round(last_lat[i], 1)] for i in
                                sorted(range(issued), key=last_lat.__getitem__, reverse=True)[:10] if accepted[i]],
    }
