"""Message.seq (issue 14, point 4): every message has its place in its conversation (a
private pair, or a group), 1, 2, 3... in the order the server accepted them, the same
for every participant: in the send's 201, history, the pull and the push. History is
in seq order and before= takes a seq. Embedded and production modes."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.e2e.support import eventually, with_settings


async def persisted(api, account, path, count):
    async def check():
        messages = await api.history_all(account, path, limit=200)
        return messages if len(messages) >= count else None

    return await eventually(check)


@pytest.mark.gen_test(timeout=60)
async def test_seq_is_in_the_201_history_pull_and_push_alike_for_everyone(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    b_socket = await api.connect(b)
    try:
        private = []
        for i in range(4):
            sender, to = (a, b) if i % 2 == 0 else (b, a)
            r = await api.send(sender, to, f"p{i}")
            assert r.status == 201, r
            private.append(r.body)
        assert [m["seq"] for m in private] == [1, 2, 3, 4]  # both directions: one conversation
        assert (await api.send(a, c, "another conversation")).body["seq"] == 1
        group = await api.create_group(a, members=[b, c])
        group_sent = [(await api.send_group(sender, group["group_id"], f"g{i}")).body
                      for i, sender in enumerate([a, c, a])]
        assert [m["seq"] for m in group_sent] == [1, 2, 3]

        pushed = await b_socket.take(5)  # b's own sends are not pushed to b
        expected = [private[0], private[2], *group_sent]
        assert [(m["id"], m["seq"]) for m in pushed] == [(m["id"], m["seq"]) for m in expected]
        pulled, _ = await api.pull_all(b)
        assert [(m["id"], m["seq"]) for m in pulled] == [(m["id"], m["seq"]) for m in expected]
        pulled_c, _ = await api.pull_all(c)  # the same seqs for another participant
        assert [m["seq"] for m in pulled_c] == [1, 1, 3]
        assert [m["id"] for m in pulled_c[1:]] == [group_sent[0]["id"], group_sent[2]["id"]]

        a_view = await persisted(api, a, f"/conversations/{b.user_id}", 4)
        b_view = await persisted(api, b, f"/conversations/{a.user_id}", 4)
        assert a_view == b_view == private[::-1]
        for member in (a, b, c):
            assert await persisted(api, member, f"/groups/{group['group_id']}", 3) == group_sent[::-1]
    finally:
        b_socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_history_pages_by_seq_and_before_takes_a_seq(api):
    a, b = await api.register(), await api.register()
    sent = [(await api.send(a, b, f"m{i}")).body for i in range(7)]
    await persisted(api, a, f"/conversations/{b.user_id}", 7)
    r = await api.history(a, f"/conversations/{b.user_id}", limit=3)
    assert [m["seq"] for m in r.body["messages"]] == [7, 6, 5] and r.body["next_before"] == "5"
    r = await api.history(b, f"/conversations/{a.user_id}", before="3")
    assert r.body["messages"] == [sent[1], sent[0]] and r.body["next_before"] is None


@with_settings(send_rate=0)
@pytest.mark.gen_test(timeout=90)
async def test_80_quick_sends_come_out_1_to_80_in_order(api):
    """Sent at once by two members (the chat page ordered by created_at, whole seconds:
    80 quick messages showed out of order)."""
    a, b = await api.register(), await api.register()
    group = await api.create_group(a, members=[b])
    listener = await api.register()
    await api.call("POST", f"/api/v1/groups/{group['group_id']}/members", {"user_id": listener.user_id}, a.token)
    socket = await api.connect(listener)
    try:
        replies = await asyncio.gather(*(api.send_group(a if i % 2 else b, group["group_id"], f"m{i}")
                                         for i in range(80)))
        assert all(r.status == 201 for r in replies)
        assert sorted(r.body["seq"] for r in replies) == list(range(1, 81))
        by_seq = {r.body["seq"]: r.body["id"] for r in replies}
        pushed = await socket.take(80, timeout=30)
        assert [m["seq"] for m in pushed] == list(range(1, 81))  # pushed in seq order
        assert [m["id"] for m in pushed] == [by_seq[seq] for seq in range(1, 81)]
        pulled, _ = await api.pull_all(listener)
        assert [m["seq"] for m in pulled] == list(range(1, 81))
        history = await persisted(api, listener, f"/groups/{group['group_id']}", 80)
        assert [m["seq"] for m in history] == list(range(80, 0, -1))
        assert [m["id"] for m in history] == [by_seq[seq] for seq in range(80, 0, -1)]
    finally:
        socket.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_retry_gets_the_same_seq_and_takes_none(api):
    a, b = await api.register(), await api.register()
    key = str(uuid.uuid4())
    first = await api.send(a, b, "once", client_msg_id=key)
    again = await api.send(a, b, "once", client_msg_id=key)
    assert first.status == again.status == 201 and again.body == first.body and first.body["seq"] == 1
    group = await api.create_group(a, members=[b])
    g1 = await api.send_group(a, group["group_id"], "once", client_msg_id=key + "-g1")
    g2 = await api.send_group(a, group["group_id"], "twice", client_msg_id=key + "-g2")
    g1_again = await api.send_group(a, group["group_id"], "once", client_msg_id=key + "-g1")
    assert (g1.body["seq"], g2.body["seq"]) == (1, 2) and g1_again.body == g1.body
    assert (await api.send(b, a, "next")).body["seq"] == 2  # the retry took no seq
