"""Typing indicators (issue 16 point 1): pushed, never stored, on every gateway.

RelayTyping takes the typing frames a socket sends (event view only): at most
TYPING_FRAMES_PER_SECOND per socket are relayed, the rest dropped silently; only a
participant may type in a conversation (else an error frame; the socket stays open).
What passes goes to every gateway (TypingBus). When a socket closes, a start it sent
that has not ended yet is ended by a stop at once.

In a large group (docs/design/large-groups.md, section 10) typing is not relayed: that
would be its member list per keystroke, and a push to every member's sockets. Its
membership is checked in the group's stream (one lookup, no member list): a member's
frame is answered as any other (nothing), and goes nowhere; anyone else's is refused.

TypingIndicators, on every gateway, pushes them to its event-view sockets of the
recipients, and ends each indicator by itself when no new start comes within
TYPING_EXPIRES seconds: a lost stop, a closed socket or a gateway that died never leaves
"typing…" on. A start that repeats one already shown is pushed again too (a client keeps
typing alive with one every few seconds): a socket that opened meanwhile learns of it,
and a client may end an indicator by itself when no start came for a while."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from application.gateway import Gateway
from application.ports import GroupRepository, GroupStreams, TypingBus, UserRepository
from domain import errors
from domain.model import GROUP
from domain.presence import (
    TYPING_EXPIRES,
    TYPING_FRAMES_PER_SECOND,
    TYPING_START,
    TYPING_STOP,
    Typing,
    error_frame,
    parse_typing,
)

log = logging.getLogger("courier.typing")

Encode = Callable[[dict], bytes]


class TypingSocket(Protocol):
    @property
    def user_id(self) -> str: ...

    @property
    def events(self) -> bool:
        """True on the event view."""

    def send(self, payload: bytes) -> bool: ...


class RelayTyping:
    def __init__(self, groups: GroupRepository, users: UserRepository, bus: TypingBus, encode: Encode,
                 monotonic: Callable[[], float] = time.monotonic, streams: GroupStreams | None = None):
        """`streams`: the large groups' (None: large groups are off, every group relays)."""
        self._groups = groups
        self._streams = streams
        self._users = users
        self._bus = bus
        self._encode = encode
        self._monotonic = monotonic
        self._relayed: dict[Any, list[float]] = {}  # socket -> when its last frames were relayed
        self._started: dict[Any, dict[tuple[str, str, str], tuple[Typing, float]]] = {}  # not stopped yet
        self._stopping: set[asyncio.Task] = set()

    async def __call__(self, socket: TypingSocket, frame: dict) -> None:
        if not socket.events:
            return  # the original view knows no typing: its frames are ignored, as before
        if not self._take(socket):
            return
        try:
            typing = await self._addressed(parse_typing(socket.user_id, frame))
        except errors.CourierError as error:
            socket.send(self._encode(error_frame(error)))
            return
        if typing is None:
            return  # a large group's: relayed to nobody
        if socket not in self._relayed:
            # Closed while its conversation was looked up: socket_closed has cleared what it
            # left, and an entry made now would keep the closed socket here for good.
            return
        started = self._started.setdefault(socket, {})
        if typing.state == TYPING_START:
            started[typing.key] = (typing, self._monotonic())
        else:
            started.pop(typing.key, None)
        await self._publish(typing)

    def _take(self, socket: TypingSocket) -> bool:
        """Whether one more frame of this socket may be relayed now (a sliding second)."""
        now = self._monotonic()
        times = self._relayed.setdefault(socket, [])
        while times and now - times[0] >= 1.0:
            times.pop(0)
        if len(times) >= TYPING_FRAMES_PER_SECOND:
            return False
        times.append(now)
        return True

    async def _addressed(self, typing: Typing) -> Typing | None:
        """With its recipients: the other participant, or the group's other members;
        None in a large group (a member's typing is relayed to nobody there)."""
        if typing.kind == GROUP and self._streams is not None:
            member = await self._streams.is_member(typing.target_id, typing.user_id)
            if member is False:
                raise errors.NotAMember()
            if member:
                return None
            # None: no stream (a small group, or a switch on its way): as any group.
        if typing.kind == GROUP:
            group = await self._groups.get(typing.target_id)
            if group is None or not group.is_member(typing.user_id):
                raise errors.NotAMember()
            recipients = tuple(m for m in group.member_ids if m != typing.user_id)
        elif typing.target_id == typing.user_id:
            recipients = ()  # notes to oneself: nobody to tell
        elif await self._users.get(typing.target_id) is None:
            raise errors.UserNotFound()
        else:
            recipients = (typing.target_id,)
        return Typing(typing.user_id, typing.kind, typing.target_id, typing.state, recipients)

    async def _publish(self, typing: Typing) -> None:
        try:
            await self._bus.publish(typing)
        except errors.CourierError as error:
            log.warning("a typing event was lost: %s", error)  # the receivers' expiry ends it

    def socket_closed(self, socket: TypingSocket) -> None:
        self._relayed.pop(socket, None)
        now = self._monotonic()
        for typing, since in self._started.pop(socket, {}).values():
            if now - since < TYPING_EXPIRES:
                task = asyncio.ensure_future(self._publish(typing.with_state(TYPING_STOP)))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)


class TypingIndicators:
    """The receiving side, on every gateway."""

    def __init__(self, gateway: Gateway, encode: Encode, expires: float = TYPING_EXPIRES):
        self._gateway = gateway
        self._encode = encode
        self._expires = expires
        self._shown: dict[tuple[str, str, str], asyncio.TimerHandle] = {}

    @property
    def shown_count(self) -> int:
        return len(self._shown)

    def on_typing(self, typing: Typing) -> None:
        timer = self._shown.pop(typing.key, None)
        if timer is not None:
            timer.cancel()
        if typing.state == TYPING_START:
            self._push(typing)
            loop = asyncio.get_running_loop()
            self._shown[typing.key] = loop.call_later(self._expires, self._expire, typing)
        elif timer is not None:
            self._push(typing)  # a stop for a start never shown here is nobody's news

    def _expire(self, typing: Typing) -> None:
        self._shown.pop(typing.key, None)
        self._push(typing.with_state(TYPING_STOP))

    def _push(self, typing: Typing) -> None:
        self._gateway.push_cursorless(typing.recipients, self._encode(typing.public()), events_only=True)

    def close(self) -> None:
        for timer in self._shown.values():
            timer.cancel()
        self._shown.clear()
