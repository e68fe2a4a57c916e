"""The frame of a pushed entry in parts, so that a push to many sockets whose cursors
differ encodes the entry once (docs/design/large-groups.md, section 6.3).

A frame's JSON is `head + cursor + close`: `head` is the public object up to
`,"cursor":"`, `close` the rest (`"}`, or `","client_msg_id":…}` in the sender's event
view). Both are built once per notification (and once more for the sender's own event
view). The cursor is itself three parts: the connection's text before the stream that
moved, that stream's part (built once per notification too), and its text after it
(VectorConnection.prefix caches those two). Each socket therefore costs a join of five
short parts (ClientChannel.send_parts), not a JSON encoding of the whole entry."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.cursor import Position, group_part, own_part
from domain.events import Delivery, Event
from domain.model import Message

CURSOR_KEY = b',"cursor":""'  # where a body with an empty cursor is cut

# encode_parts(event, user_id | None) -> (head, close): the frame of `event` with any cursor
# is head + cursor + close; user_id as in the gateway's encode (None: the original view).
EncodeParts = Callable[[Event, str | None], tuple[bytes, bytes]]


def split_at_cursor(body: bytes) -> tuple[bytes, bytes]:
    """(head, close) of a public JSON body encoded with an empty cursor. The key occurs
    once: inside a JSON string every `"` is escaped, so `,"cursor":""` is only ever the
    key itself (and no nested object of an event has a cursor)."""
    at = body.index(CURSOR_KEY) + len(CURSOR_KEY) - 1
    return body[:at], body[at:]


def parts_from(encode: Callable[[Delivery, str | None], bytes]) -> EncodeParts:
    """encode_parts derived from an encode(delivery, user_id) that writes JSON."""
    return lambda event, user_id: split_at_cursor(encode(Delivery(event, ""), user_id))


class Splice:
    """One notification's shared parts: its stream's cursor part, and head and close,
    encoded on first use (a notification no socket takes encodes nothing)."""

    __slots__ = ("event", "part", "_encode_parts", "shared", "_own")

    def __init__(self, event: Event, part: bytes, encode_parts: EncodeParts):
        self.event = event
        self.part = part
        self._encode_parts = encode_parts
        self.shared: tuple[bytes, bytes] | None = None  # view(None), once it was asked for
        self._own: tuple[bytes, bytes] | None = None

    def view(self, user_id: str | None) -> tuple[bytes, bytes]:
        """(head, close) for a socket of `user_id` on the event view (None: the original
        view). Only the sender's own event view differs (Delivery.public_for adds the
        client_msg_id of one's own send), so there are at most two encodings."""
        event = self.event
        if user_id is not None and isinstance(event, Message) and event.from_user_id == user_id:
            own = self._own
            if own is None:
                own = self._own = self._encode_parts(event, user_id)
            return own
        shared = self.shared
        if shared is None:
            shared = self.shared = self._encode_parts(event, None)
        return shared


class Frames:
    """A gateway's maker of Splices, shared by its VectorConnections."""

    __slots__ = ("encode_parts", "_payload", "_own", "checkpoint_due")

    def __init__(self, encode_parts: EncodeParts):
        self.encode_parts = encode_parts
        # The gateway's: a connection whose cursor lists many groups asks for a checkpoint
        # (docs/design/large-groups.md, section 6.4): (connection, urgent). Urgent: a push
        # was not sent because the cursor would not fit; the connection must be held.
        self.checkpoint_due: Callable[[Any, bool], None] | None = None
        self._payload: bytes | None = None
        self._own: Splice | None = None

    def group(self, event: Event, stream: int, position: Position) -> Splice:
        return Splice(event, group_part(stream, position).encode(), self.encode_parts)

    def own(self, delivery: Delivery, payload: bytes, position: Position) -> Splice:
        """The Splice of an own-log push. Every socket that takes one notification's cursor
        is handed the same payload object (Gateway.on_notification's `prepared`), so the
        last one is kept by the payload's identity: one Splice per notification."""
        if payload is not self._payload or self._own is None:
            self._own = Splice(delivery.event, own_part(position).encode(), self.encode_parts)
            self._payload = payload
        return self._own
