"""The Heartbeat: pings spread over a wheel, pong deadlines, token expiry, one timer."""
from __future__ import annotations

import asyncio
import time

import pytest

from entrypoints.heartbeat import Heartbeat


class FakeSocket:
    def __init__(self, heartbeat: Heartbeat, answers_pings: bool = True):
        self.heartbeat = heartbeat
        self.answers_pings = answers_pings
        self.awaiting_pong = False
        self.pings = 0
        self.closed: str | None = None

    def send_ping(self) -> None:
        self.pings += 1
        if self.answers_pings:
            asyncio.get_running_loop().call_soon(self.pong)

    def pong(self) -> None:
        self.awaiting_pong = False

    def ping_timed_out(self) -> None:
        self.closed = "ping timed out"
        self.heartbeat.discard(self)

    def token_expired(self) -> None:
        self.closed = "token expired"
        self.heartbeat.discard(self)


def far_future() -> float:
    return time.time() + 3600


@pytest.mark.gen_test(timeout=10)
async def test_sockets_are_pinged_about_once_an_interval_and_answering_ones_stay():
    heartbeat = Heartbeat(ping_interval=0.2, ping_timeout=0.2)
    sockets = [FakeSocket(heartbeat) for _ in range(10)]
    for socket in sockets:
        heartbeat.add(socket, far_future())
    await asyncio.sleep(0.75)
    assert all(socket.closed is None for socket in sockets)
    # About one ping per 0.2 s interval (fewer if the machine is busy and ticks run late).
    assert all(1 <= socket.pings <= 4 for socket in sockets), [s.pings for s in sockets]
    heartbeat.stop()


@pytest.mark.gen_test(timeout=10)
async def test_a_socket_that_does_not_answer_is_dropped_after_the_timeout():
    heartbeat = Heartbeat(ping_interval=0.2, ping_timeout=0.1)
    silent, alive = FakeSocket(heartbeat, answers_pings=False), FakeSocket(heartbeat)
    heartbeat.add(silent, far_future())
    heartbeat.add(alive, far_future())
    started = time.monotonic()
    while silent.closed is None and time.monotonic() - started < 2:
        await asyncio.sleep(0.01)
    assert silent.closed == "ping timed out"
    # First ping about one interval after joining, then the timeout (ticks of 0.05 s);
    # the upper bound leaves room for a busy machine.
    assert 0.25 <= time.monotonic() - started <= 1.5
    assert alive.closed is None
    assert len(heartbeat) == 1
    heartbeat.stop()


@pytest.mark.gen_test(timeout=10)
async def test_pings_are_spread_over_the_interval_not_sent_all_at_once():
    heartbeat = Heartbeat(ping_interval=1.0, ping_timeout=1.0)  # 20 slots of 0.05 s
    loop = asyncio.get_running_loop()
    sockets = []
    for _ in range(20):
        socket = FakeSocket(heartbeat)
        heartbeat.add(socket, far_future())
        sockets.append(socket)
        await asyncio.sleep(0.05)  # sockets join over one interval
    pinged_at: list[float] = []
    for socket in sockets:
        socket.send_ping = lambda s=socket: pinged_at.append(loop.time())
        socket.answers_pings = False
    await asyncio.sleep(1.0)
    heartbeat.stop()
    assert len(pinged_at) >= 10
    # Many different ticks, not one burst.
    assert len({round(t, 2) for t in pinged_at}) >= 5


@pytest.mark.gen_test(timeout=10)
async def test_an_expired_token_closes_its_socket_on_the_next_tick():
    heartbeat = Heartbeat(ping_interval=0, ping_timeout=0)  # pings off: expiry still runs
    soon, later = FakeSocket(heartbeat), FakeSocket(heartbeat)
    heartbeat.add(soon, time.time() + 0.3)
    heartbeat.add(later, far_future())
    await asyncio.sleep(0.2)
    assert soon.closed is None
    await asyncio.sleep(0.4)
    assert soon.closed == "token expired"
    assert later.closed is None and later.pings == 0
    heartbeat.discard(later)
    assert len(heartbeat) == 0 and heartbeat._timer is None  # idle: no timer left


@pytest.mark.gen_test(timeout=10)
async def test_closed_sockets_leave_no_expiry_behind():
    heartbeat = Heartbeat(ping_interval=20, ping_timeout=20)
    for _ in range(5000):
        socket = FakeSocket(heartbeat)
        heartbeat.add(socket, far_future())
        heartbeat.discard(socket)
    assert len(heartbeat) == 0
    # Cancelled entries are swept out once they are half of the heap.
    assert len(heartbeat._expiries) <= 2048
    keep = FakeSocket(heartbeat)
    heartbeat.add(keep, far_future())
    assert keep in heartbeat._entry_of
    heartbeat.stop()


@pytest.mark.gen_test(timeout=10)
async def test_sockets_opened_together_are_not_all_pinged_in_one_tick():
    """A reconnect storm: a thousand sockets join within one tick. They are spread over
    the last quarter of the wheel (25 of 100 slots), so that one interval later their
    pings go out over 25 ticks instead of all in one."""
    heartbeat = Heartbeat(ping_interval=20, ping_timeout=20)  # 100 slots of 0.2 s
    for _ in range(1000):
        heartbeat.add(FakeSocket(heartbeat), far_future())
    sizes = sorted((len(slot) for slot in heartbeat._slots), reverse=True)
    assert sizes[0] <= 40 and sum(1 for size in sizes if size) == 25, sizes[:30]
    heartbeat.stop()
