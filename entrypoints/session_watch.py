"""Closes the open sockets whose session has ended: the token was revoked (logged out,
through this gateway or another) or its user no longer exists.

A socket is authenticated once, at the upgrade. Afterwards:
- every revocation is announced to every gateway (TokenRevocations.follow), and the
  sockets of the user concerned are checked at once (all of them when announcements
  may have been missed);
- every `account_check` seconds every socket is checked again (Authenticate.problems),
  which is how a user removed from the database, with nothing announced, is noticed.
Sockets are checked in slices, so that no check holds the event loop for long. A socket
whose session ended is closed with 4001, as one whose token expired (the Heartbeat
closes those). While a store cannot answer, the sockets stay open, and are checked
again on the next round."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.ws")

WARN_EVERY = 60.0  # seconds between two warnings that a check could not run
SLICE = 500  # sockets checked in one go


class SessionWatch:
    def __init__(self, authenticate, revocations, open_sockets: set, account_check: float):
        self._authenticate = authenticate
        self._revocations = revocations
        self._open_sockets = open_sockets
        self._every = account_check
        self._warned_at = float("-inf")
        self._pending: set[asyncio.Task] = set()

    async def run(self) -> None:
        """Follow the revocations, and check every socket every `account_check` seconds,
        until cancelled."""
        follower = asyncio.ensure_future(self._revocations.follow(self.on_revoked))
        try:
            while True:
                await asyncio.sleep(self._every)
                await self.check(list(self._open_sockets))
        finally:
            for task in [follower, *self._pending]:
                task.cancel()
            # Let the follower close its connection before the loop may stop.
            await asyncio.gather(follower, *self._pending, return_exceptions=True)

    def on_revoked(self, user_id: str | None) -> None:
        """A token of `user_id` was revoked (None: any user's, maybe): check its sockets."""
        if user_id is None:
            sockets = list(self._open_sockets)
        else:
            sockets = [s for s in self._open_sockets if s.claims.user_id == user_id]
        if sockets:
            task = asyncio.ensure_future(self.check(sockets))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def check(self, sockets: Iterable) -> None:
        sockets = list(sockets)
        for start in range(0, len(sockets), SLICE):
            if start:
                await asyncio.sleep(0)  # let pushes through between two slices
            part = sockets[start : start + SLICE]
            try:
                problems = await self._authenticate.problems([s.claims for s in part])
            except ServiceUnavailable as error:
                now = time.monotonic()
                if now - self._warned_at >= WARN_EVERY:
                    self._warned_at = now
                    log.warning("open sockets' sessions not checked: %s", error)
                return
            except Exception:
                log.exception("checking the open sockets' sessions failed")
                return
            for socket, problem in zip(part, problems, strict=True):
                if problem is not None:
                    socket.session_ended(problem)
