"""Who may open one more WebSocket: caps per user and per client address, so that one
user (or one address) cannot take every socket a gateway can hold."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from application.ports import ConnectionCounter
from domain import errors

# Seconds a refused client is told to wait: sockets free up when others close, which
# the server cannot foresee; a short wait keeps a reconnecting client from hammering.
RETRY_AFTER = 5.0

log = logging.getLogger("courier.sockets")


@dataclass(frozen=True, slots=True)
class Admission:
    """One socket counted against its user and its address: release it exactly once."""

    user_id: str
    address: str


@dataclass
class AdmitSocket:
    per_user: ConnectionCounter
    per_address: ConnectionCounter
    # The releases started by release_soon() and not yet done (the event loop keeps only
    # weak references to tasks); the server waits for them before closing the counters.
    _releasing: set[asyncio.Task] = field(default_factory=set, init=False, repr=False)

    async def __call__(self, user_id: str, address: str) -> Admission:
        """Count the socket, or raise RateLimited (nothing counted) when its user or its
        address has every socket it may have open already."""
        if not await self.per_address.acquire(address):
            raise errors.RateLimited(RETRY_AFTER, "too many open sockets from this address")
        try:
            admitted = await self.per_user.acquire(user_id)
        except BaseException:
            await self.per_address.release(address)
            raise
        if not admitted:
            await self.per_address.release(address)
            raise errors.RateLimited(RETRY_AFTER, "too many open sockets for this user; close one first")
        return Admission(user_id, address)

    async def release(self, admission: Admission) -> None:
        try:
            await self.per_user.release(admission.user_id)
        finally:
            await self.per_address.release(admission.address)

    def release_soon(self, admission: Admission) -> None:
        """release(), from synchronous code (a socket closing): in a task of its own,
        which settle() waits for."""
        task = asyncio.ensure_future(self.release(admission))
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task) -> None:
        self._releasing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("releasing a socket's count failed: %r", task.exception())

    async def settle(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for the releases under way: at a shutdown,
        before the counters' connections close. A release still running then would reopen
        them (redis-py's clients reconnect on the next command, the cluster client by
        reading the slots anew), and no one would close them again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._releasing:  # a release may be started while others finish
            _, still = await asyncio.wait(set(self._releasing), timeout=max(0.0, deadline - loop.time()))
            if still:
                log.warning("%d socket count releases did not finish", len(still))
                return
