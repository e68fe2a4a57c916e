"""Closes the open sockets whose session has ended: the token was revoked (logged out,
on this gateway or another) or its user no longer exists.

A socket is authenticated once, at the upgrade; afterwards its token is checked again
every `every` seconds with all the others (Authenticate.problems: one question to the
stores for every socket of the gateway, answered mostly from the gateways' memory of
recent answers), and at once for a user who logged out through this gateway. A socket
whose session ended is closed with 4001, as one whose token expired (the Heartbeat
closes those). While a store cannot answer, the sockets stay open: a revocation is
then seen on the first round after it is back."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.ws")

WARN_EVERY = 60.0  # seconds between two warnings that the check could not run


class SessionWatch:
    def __init__(self, authenticate, open_sockets: set, every: float):
        self._authenticate = authenticate
        self._open_sockets = open_sockets
        self._every = every
        self._warned_at = float("-inf")
        self._pending: set[asyncio.Task] = set()

    async def run(self) -> None:
        """Check every open socket every `every` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._every)
            await self.check(list(self._open_sockets))

    def check_user(self, user_id: str) -> None:
        """Check the sockets of `user_id` now (its tokens were just revoked here)."""
        sockets = [s for s in self._open_sockets if s.claims.user_id == user_id]
        if sockets:
            task = asyncio.ensure_future(self.check(sockets))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def check(self, sockets: Iterable) -> None:
        sockets = list(sockets)
        if not sockets:
            return
        try:
            problems = await self._authenticate.problems([s.claims for s in sockets])
        except ServiceUnavailable as error:
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning("open sockets' sessions not checked: %s", error)
            return
        except Exception:
            log.exception("checking the open sockets' sessions failed")
            return
        for socket, problem in zip(sockets, problems, strict=True):
            if problem is not None:
                socket.session_ended(problem)
