"""One set of timers for every open socket of the process: pings, pong deadlines
and token expiry.

Tornado gives each WebSocket a ping Task of its own (a coroutine, a Task, a
future and a timer handle, ~2 KB per socket), and Courier used to add a timer
per socket for its token's expiry. With tens of thousands of sockets that is
memory for nothing: here one timer ticks every `tick` seconds for all of them.

- Pings: the sockets are spread over the slots of a wheel, one slot per tick, so
  a socket is pinged once per `ping_interval` and the pings of a big process are
  spread evenly over the interval (never 20,000 sends in one go). A slot is
  checked again `ping_timeout` later (rounded up to a tick): a socket whose pong
  has not come is dropped, as Tornado's own pinger does.
- Token expiry: a heap of (expires_at, entry) with the socket; the socket is
  closed on the first tick after its token expires. A socket closed before its
  token expires leaves a cancelled entry, swept out once they are half the heap.

Sockets are duck-typed: they answer `send_ping()`, `ping_timed_out()`,
`token_expired()` and have an `awaiting_pong` flag that their pong handler clears.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time

MAX_SLOTS = 100
JOIN_SPREAD = 4  # a new socket joins one of the last len(slots) // JOIN_SPREAD slots pinged
MIN_TICK = 0.05  # seconds
EXPIRY_ONLY_TICK = 0.2  # seconds, when pings are off


class Heartbeat:
    def __init__(self, ping_interval: float, ping_timeout: float) -> None:
        self._pinging = ping_interval > 0
        if self._pinging:
            self.tick = max(ping_interval / MAX_SLOTS, MIN_TICK)
            slots = max(1, math.ceil(ping_interval / self.tick))
            # How many ticks after a slot's pings the slot is checked for pongs
            # (0: no timeout). At most one round: pinging a slot again re-arms it.
            self._check_after = min(slots, math.ceil(ping_timeout / self.tick)) if ping_timeout > 0 else 0
        else:
            self.tick = EXPIRY_ONLY_TICK
            slots = 1
            self._check_after = 0
        self._slots: list[set] = [set() for _ in range(slots)]
        self._join_back = range(1, max(1, slots // JOIN_SPREAD) + 1)  # how far back a socket may join
        self._slot_of: dict = {}
        self._current = 0
        self._expiries: list[list] = []  # heap of [expires_at, sequence, socket or None]
        self._entry_of: dict = {}
        self._cancelled = 0
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, socket, expires_at: float) -> None:
        """Watch a socket whose token expires at `expires_at` (time.time())."""
        if socket in self._slot_of:
            return
        # One of the slots pinged last: the socket's first ping comes 3/4 to 1 interval
        # from now. The least filled of the last quarter of the wheel, so that sockets
        # opened together (a reconnect storm) are not all pinged in one tick later.
        slots = self._slots
        recent = ((self._current - back) % len(slots) for back in self._join_back)
        slot = min(recent, key=lambda index: len(slots[index]))
        slots[slot].add(socket)
        self._slot_of[socket] = slot
        entry = [expires_at, next(self._sequence), socket]
        heapq.heappush(self._expiries, entry)
        self._entry_of[socket] = entry
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._on_tick)

    def discard(self, socket) -> None:
        slot = self._slot_of.pop(socket, None)
        if slot is None:
            return
        self._slots[slot].discard(socket)
        entry = self._entry_of.pop(socket, None)
        if entry is None:
            return self._stop_when_idle()  # its expiry already left the heap
        entry[2] = None
        self._cancelled += 1
        if self._cancelled > 1024 and self._cancelled * 2 > len(self._expiries):
            self._expiries = [e for e in self._expiries if e[2] is not None]
            heapq.heapify(self._expiries)
            self._cancelled = 0
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        if not self._slot_of:
            self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_tick(self) -> None:
        self._timer = None
        try:
            self._expire(time.time())
            if self._pinging:
                self._ping_round()
        finally:
            if self._slot_of and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.tick, self._on_tick)

    def _expire(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, _, socket = heapq.heappop(expiries)
            if socket is None:
                self._cancelled -= 1
                continue
            del self._entry_of[socket]  # it has left the heap
            socket.token_expired()  # calls discard()

    def _ping_round(self) -> None:
        slots = self._slots
        self._current = (self._current + 1) % len(slots)
        if self._check_after:
            # list(): closing a socket discards it from its slot.
            for socket in list(slots[(self._current - self._check_after) % len(slots)]):
                if socket.awaiting_pong:
                    socket.ping_timed_out()
        for socket in list(slots[self._current]):
            socket.awaiting_pong = True
            socket.send_ping()
