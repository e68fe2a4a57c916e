"""A read marker whose gateway died after the move and before the append, in both
modes: the move and its announcement are in the database (written as the gateway's
transaction writes them, ConversationStore.mark_read), the event in no log. The relay
(the embedded server's own; in production `courier worker`'s, run here once from the
e2e worker's container) appends it to the reader's and the other user's logs, once: a
retried POST afterwards adds nothing."""
from __future__ import annotations

import time

import pytest

from application.conversations import private_conversation
from application.ports import Announcement
from domain.events import ReadMarker, read_marker_id
from domain.model import PRIVATE
from entrypoints.settings import PRODUCTION


def read_event(event: dict, reader, peer, seq: int) -> bool:
    return event == {"type": "read", "id": event["id"], "conversation": {"type": "private", "user_id": peer.user_id},
                     "user_id": reader.user_id, "seq": seq, "cursor": event["cursor"]}


@pytest.mark.gen_test(timeout=60)
async def test_a_read_event_left_behind_is_relayed_once(api, courier):
    a, b = await api.register(), await api.register()
    await api.send(a, b, "one")
    await api.send(a, b, "two")
    await courier.settle()
    sender, reader_device = await api.connect(a, events=True), await api.connect(b, events=True)
    conversation = private_conversation(a.user_id, b.user_id)
    marker = ReadMarker(id=read_marker_id(b.user_id, conversation, 2), user_id=b.user_id,
                        conversation_type=PRIVATE, conversation_id=a.user_id, seq=2)
    left = Announcement(marker, [b.user_id, a.user_id], int(time.time()) - 60)  # due for the relay
    store = courier.server.container.conversations()
    assert await store.mark_read(b.user_id, conversation, 2, peer_id=a.user_id, announce=left) == (2, 0, True)
    if courier.mode == PRODUCTION:
        assert await courier.worker.container.relay_announcements().once() == 1
    receipt, own = await sender.next(timeout=10), await reader_device.next(timeout=10)
    assert read_event(receipt, b, a, 2) and read_event(own, b, a, 2) and own["id"] == receipt["id"] == marker.id
    r = await api.call("POST", f"/api/v1/conversations/{a.user_id}/read", {"seq": 2}, b.token)  # a retry
    assert r.status == 200 and r.body == {"read_seq": 2, "unread_count": 0}, r
    assert await sender.nothing(within=2.5) and await reader_device.nothing()  # a relay round later too
    for account in (a, b):
        events, _ = await api.events_all(account)
        assert [e["id"] for e in events if e["type"] == "read"] == [marker.id]
    assert await courier.server.container.outbox().announcements(0, 10) == []
