"""The gateway tells its NotificationAudience whom it serves (a Redis Cluster's bus sends a
gateway only its users' buckets): a user is included before the log is read for a new
connection - so what the read misses is published after the inclusion and comes live -
and excluded once the user's last connection here is gone, not before."""
from __future__ import annotations

import uuid

import pytest

from adapters.memory.bus import InProcessBus
from application.gateway import Gateway
from domain.model import PRIVATE, Message
from entrypoints.container import encode_delivery
from tests.fakes.channel import RecordingChannel
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox


class RecordingAudience:
    def __init__(self, inbox: MemoryInbox, sender: str):
        self.calls: list[tuple[str, str]] = []
        self._inbox = inbox
        self._sender = sender

    async def include(self, user_id: str) -> None:
        self.calls.append(("include", user_id))
        # Sent while the user is being included: the read that follows must find it.
        await self._inbox.deliver(Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=self._sender,
                                          to_user_id=user_id, content="during include",
                                          created_at=1_700_000_000), [user_id])

    def exclude(self, user_id: str) -> None:
        self.calls.append(("exclude", user_id))


@pytest.mark.gen_test
async def test_a_user_is_included_before_the_read_and_excluded_with_its_last_connection():
    inbox = MemoryInbox(InProcessBus(), MemoryIdempotencyKeys())
    audience = RecordingAudience(inbox, "sender")
    gateway = Gateway(inbox, encode_delivery, audience=audience)
    start = await gateway.live_cursor("alice")
    first = RecordingChannel()
    conn1 = await gateway.attach("alice", first, start)
    assert audience.calls == [("include", "alice")]
    assert [b"during include" in payload for payload in first.payloads] == [True]  # read after the include
    conn2 = await gateway.attach("alice", RecordingChannel(), None)
    assert audience.calls == [("include", "alice")] * 2  # each attach waits for its inclusion
    gateway.detach(conn1)
    assert ("exclude", "alice") not in audience.calls  # a connection of hers is still here
    gateway.detach(conn2)
    assert audience.calls[-1] == ("exclude", "alice")
