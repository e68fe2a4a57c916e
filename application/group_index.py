"""Which local connections are members of which large group now, and the group
channels this gateway follows because of them (docs/design/large-groups.md, section
6.2): a group's channel is followed while at least one local connection is in it.

A connection is in a group's index while its interval is open. A leave takes it out
at once: its notification comes on the group's channel after every entry up to the
leave, so nothing it still needs can come later there (and a replay reads the
stream, clipped to the intervals, in any case)."""
from __future__ import annotations

import asyncio
import logging

from application.ports import NotificationSubscriber
from application.vector_connection import VectorConnection

log = logging.getLogger("courier.gateway")


class GroupIndex:
    def __init__(self, subscriber: NotificationSubscriber):
        self._subscriber = subscriber
        self._members: dict[str, set[VectorConnection]] = {}
        self._streams: dict[str, int] = {}  # group id -> its stream number (never changes)
        self._unfollows: set[asyncio.Task] = set()

    def __contains__(self, group_id: str) -> bool:
        return group_id in self._members

    def get(self, group_id: str) -> tuple[int, set[VectorConnection]] | None:
        """The group's stream number and its local member connections; None: none here."""
        conns = self._members.get(group_id)
        return None if conns is None else (self._streams[group_id], conns)

    async def place(self, conn: VectorConnection) -> set[str]:
        """Put the connection in the groups where it is a member now and take it out of
        the others; returns once every channel of its groups is followed for sure (so a
        read of the streams after this misses nothing that comes later live). Returns
        the groups the connection was not in before: an entry of theirs pushed just
        before reached it neither live nor held."""
        open_groups = conn.open_groups()
        entered: set[str] = set()
        for group_id, stream in open_groups.items():
            self._streams[group_id] = stream
            members = self._members.setdefault(group_id, set())
            if conn not in members:
                members.add(conn)
                entered.add(group_id)
        for slot in conn.vector.slots.values():
            if slot.group_id not in open_groups:
                self.leave(conn, slot.group_id)
        if open_groups:
            # Every group, not only those new here: one whose SUBSCRIBE another connection
            # sent a moment ago may not be confirmed yet, and the subscriber waits for it.
            await self._subscriber.follow(list(open_groups))
        return entered

    def enter(self, conn: VectorConnection, group_id: str, stream: int) -> None:
        """Put the connection in one group's index, without following its channel (the
        caller follows it once for all its connections: `follow`)."""
        self._streams[group_id] = stream
        self._members.setdefault(group_id, set()).add(conn)

    async def follow(self, group_id: str) -> None:
        """Returns once the group's channel is followed for sure."""
        await self._subscriber.follow([group_id])

    def leave(self, conn: VectorConnection, group_id: str) -> None:
        conns = self._members.get(group_id)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._members[group_id]
            task = asyncio.ensure_future(self._unfollow(group_id))
            self._unfollows.add(task)
            task.add_done_callback(self._unfollows.discard)

    def drop(self, conn: VectorConnection) -> None:
        """A connection gone: out of all its groups."""
        for slot in conn.vector.slots.values():
            self.leave(conn, slot.group_id)

    async def _unfollow(self, group_id: str) -> None:
        # Later, not at once (on_notification cannot wait): a connection that entered the
        # group again meanwhile keeps it followed.
        if group_id in self._members:
            return
        try:
            await self._subscriber.unfollow([group_id])
        except Exception as error:  # noqa: BLE001 - a channel followed for nothing costs little
            log.warning("could not unfollow group %s: %r", group_id, error)

    async def settled(self) -> None:
        """Wait for the unfollows under way (for tests)."""
        while self._unfollows:
            await asyncio.gather(*self._unfollows)
