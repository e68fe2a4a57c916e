"""Sending (private, group), the pull, and the history calls."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from application.ports import Answer
from domain import errors
from domain.model import GROUP, PRIVATE, Message
from entrypoints.http.errors import status_of
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import GatedInbox
from tests.unit.courier import Courier

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def alice_and_bob(courier: Courier):
    return await courier.users_named("alice", "bob")


def inbox_ids(courier: Courier, user_id: str) -> list[str]:
    """The ids of the messages in a user's log (group changes left out)."""
    return [d.event.id for d in courier.inbox._streams.get(user_id, []) if isinstance(d.event, Message)]


# send private -------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_send_private_appends_to_the_recipient_and_sender_logs_and_notifies(courier):
    alice, bob = await alice_and_bob(courier)
    message = await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "hi"})
    assert message.type == PRIVATE
    assert (message.from_user_id, message.to_user_id, message.content) == (alice.id, bob.id, "hi")
    assert message.created_at == int(courier.clock.now())
    assert "cursor" not in message.public()
    assert inbox_ids(courier, bob.id) == [message.id]
    assert inbox_ids(courier, alice.id) == [message.id]  # the sender's other devices (event view)
    [notification] = courier.bus.published
    assert notification.event == message
    assert list(notification.cursors) == [bob.id, alice.id]
    assert courier.inbox.persisted == [message]


@pytest.mark.gen_test
async def test_content_is_kept_byte_for_byte(courier):
    alice, bob = await alice_and_bob(courier)
    for content in ["   ", "  <b>hi</b> & bye \n", "x" * 4000]:
        message = await courier.send_private(alice.id, {"to_user_id": bob.id, "content": content})
        assert message.content == content


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("content", "error"),
    [("", errors.InvalidContent), (None, errors.InvalidContent), (5, errors.InvalidContent),
     ("x" * 4001, errors.ContentTooLong), ("bad \udc00", errors.InvalidContent)],
)
async def test_invalid_content_is_refused_and_nothing_is_sent(courier, content, error):
    alice, bob = await alice_and_bob(courier)
    with pytest.raises(error):
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": content})
    assert courier.bus.published == []


@pytest.mark.gen_test
async def test_a_missing_content_is_invalid(courier):
    alice, bob = await alice_and_bob(courier)
    with pytest.raises(errors.InvalidContent):
        await courier.send_private(alice.id, {"to_user_id": bob.id})


@pytest.mark.gen_test
async def test_the_content_limit_is_configurable(make_courier):
    courier = make_courier(max_content_length=10)
    alice, bob = await alice_and_bob(courier)
    await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "x" * 10})
    with pytest.raises(errors.ContentTooLong):
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "x" * 11})


@pytest.mark.gen_test
async def test_send_to_an_unknown_user_is_not_found(courier):
    alice = await courier.user("alice")
    with pytest.raises(errors.UserNotFound):
        await courier.send_private(alice.id, {"to_user_id": UNKNOWN_ID, "content": "hi"})
    assert courier.bus.published == []


@pytest.mark.gen_test
@pytest.mark.parametrize("to_user_id", [None, "", "bob", 42, ["x"], UNKNOWN_ID + "0"])
async def test_send_to_an_invalid_user_id_is_invalid_input(courier, to_user_id):
    alice = await courier.user("alice")
    body = {"content": "hi"} if to_user_id is None else {"to_user_id": to_user_id, "content": "hi"}
    with pytest.raises(errors.InvalidInput):
        await courier.send_private(alice.id, body)


@pytest.mark.gen_test
async def test_a_note_to_oneself_lands_in_ones_own_inbox(courier):
    alice = await courier.user("alice")
    message = await courier.send_private(alice.id, {"to_user_id": alice.id, "content": "memo"})
    assert inbox_ids(courier, alice.id) == [message.id]


@pytest.mark.gen_test
async def test_sending_is_rate_limited_per_sender(make_courier):
    courier = make_courier(send_rate=1, send_burst=2)
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    body = {"to_user_id": bob.id, "content": "hi"}
    await courier.send_private(alice.id, body)
    await courier.send_private(alice.id, body)
    with pytest.raises(errors.RateLimited) as raised:
        await courier.send_private(alice.id, body)
    assert raised.value.retry_after == pytest.approx(1.0)
    assert len(courier.bus.published) == 2
    await courier.send_private(carol.id, body)  # another sender has its own bucket
    courier.clock.advance(1.0)
    await courier.send_private(alice.id, body)
    with pytest.raises(errors.RateLimited):
        await courier.send_private(alice.id, body)


@pytest.mark.gen_test
async def test_a_send_rate_of_zero_turns_the_limit_off(make_courier):
    courier = make_courier(send_rate=0)
    alice, bob = await alice_and_bob(courier)
    for _ in range(100):
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "hi"})
    assert len(inbox_ids(courier, bob.id)) == 100


@pytest.mark.gen_test
async def test_a_client_msg_id_makes_the_send_idempotent(courier):
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    first = await courier.send_private(alice.id, body)
    again = await courier.send_private(alice.id, dict(body))
    assert again == first
    assert inbox_ids(courier, bob.id) == [first.id]  # delivered once
    assert len(courier.bus.published) == 1


@pytest.mark.gen_test
async def test_client_msg_ids_are_per_sender(courier):
    alice, bob = await alice_and_bob(courier)
    a = await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "a", "client_msg_id": "k"})
    b = await courier.send_private(bob.id, {"to_user_id": alice.id, "content": "b", "client_msg_id": "k"})
    c = await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "c", "client_msg_id": "k2"})
    assert len({a.id, b.id, c.id}) == 3


@pytest.mark.gen_test
async def test_a_failed_delivery_forgets_the_key_so_a_retry_works(courier):
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    courier.inbox.fail_next = errors.ServiceUnavailable()
    with pytest.raises(errors.ServiceUnavailable):
        await courier.send_private(alice.id, body)
    assert courier.idempotency.answers == {}
    assert inbox_ids(courier, bob.id) == []
    retried = await courier.send_private(alice.id, body)
    assert inbox_ids(courier, bob.id) == [retried.id]
    assert await courier.send_private(alice.id, body) == retried


@pytest.mark.gen_test
async def test_a_retry_while_the_first_send_is_delivering_waits_for_it(make_courier):
    courier = make_courier(wrap_inbox=GatedInbox)
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    first = asyncio.ensure_future(courier.send_private(alice.id, body))
    await courier.inbox.entered.wait()
    retry = asyncio.ensure_future(courier.send_private(alice.id, dict(body)))
    await asyncio.sleep(0.1)
    assert not retry.done()  # no 201 for a message that is not delivered yet
    courier.inbox.open()
    original = await first
    assert await retry == original
    assert inbox_ids(courier, bob.id) == [original.id]


@pytest.mark.gen_test
async def test_a_retry_while_the_first_send_fails_sends_the_message_itself(make_courier):
    courier = make_courier(wrap_inbox=GatedInbox)
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    first = asyncio.ensure_future(courier.send_private(alice.id, body))
    await courier.inbox.entered.wait()
    retry = asyncio.ensure_future(courier.send_private(alice.id, dict(body)))
    await asyncio.sleep(0.05)
    courier.inbox.open(errors.ServiceUnavailable())
    with pytest.raises(errors.ServiceUnavailable):
        await first  # the first client is told 503; nothing was accepted
    await courier.inbox.entered.wait()  # the retry took the key and delivers its own message
    assert not retry.done()
    courier.inbox.open()
    sent = await retry
    assert inbox_ids(courier, bob.id) == [sent.id]  # delivered exactly once
    courier.inbox.hold = False
    assert await courier.send_private(alice.id, dict(body)) == sent


@pytest.mark.gen_test
async def test_a_retry_still_pending_after_the_wait_is_told_to_retry(make_courier):
    courier = make_courier(wrap_inbox=GatedInbox, pending_wait=0.05)
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    first = asyncio.ensure_future(courier.send_private(alice.id, body))
    await courier.inbox.entered.wait()
    with pytest.raises(errors.SendInProgress) as raised:
        await courier.send_private(alice.id, dict(body))
    assert status_of(raised.value) == 409
    assert raised.value.code == "send_in_progress"
    courier.inbox.open()
    original = await first
    assert await courier.send_private(alice.id, dict(body)) == original
    assert inbox_ids(courier, bob.id) == [original.id]


@pytest.mark.gen_test
async def test_the_pending_answer_of_a_send_that_died_expires(make_courier):
    courier = make_courier(pending_wait=0.02)
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    # A gateway remembered the key, then died before delivering or forgetting it.
    lost = Message(type=PRIVATE, id="lost", from_user_id=alice.id, to_user_id=bob.id, content="hi",
                   created_at=0, client_msg_id="k1")
    assert await courier.idempotency.remember(alice.id, "k1", lost) is None
    with pytest.raises(errors.SendInProgress):
        await courier.send_private(alice.id, body)
    courier.clock.advance(29)
    with pytest.raises(errors.SendInProgress):
        await courier.send_private(alice.id, body)
    courier.clock.advance(1)
    sent = await courier.send_private(alice.id, body)
    assert sent.id != "lost"
    assert inbox_ids(courier, bob.id) == [sent.id]
    assert await courier.send_private(alice.id, body) == sent


@pytest.mark.gen_test
async def test_the_inbox_confirms_the_key_with_the_append_and_the_send_never_does(courier, monkeypatch):
    """As the Redis and SQL inboxes do, in the same atomic step: no crash between the
    append and a confirm can leave a delivered message pending (ports.Inbox.deliver)."""
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}

    async def not_called(*args):
        raise AssertionError("the use case confirmed the key itself")

    monkeypatch.setattr(courier.idempotency, "confirm", not_called)
    sent = await courier.send_private(alice.id, body)
    assert inbox_ids(courier, bob.id) == [sent.id]
    other = dataclasses.replace(sent, id="other")
    assert await courier.idempotency.remember(alice.id, "k1", other) == Answer(sent, delivered=True)
    assert await courier.send_private(alice.id, dict(body)) == sent
    assert inbox_ids(courier, bob.id) == [sent.id]


@pytest.mark.gen_test
async def test_a_cancelled_send_leaves_its_key_pending(make_courier):
    """The append may have gone through: forgetting the key would let a retry send it twice."""
    courier = make_courier(wrap_inbox=GatedInbox, pending_wait=0.02)
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k1"}
    first = asyncio.ensure_future(courier.send_private(alice.id, body))
    await courier.inbox.entered.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(errors.SendInProgress):
        await courier.send_private(alice.id, body)


# the in-memory IdempotencyKeys --------------------------------------------------------
def keyed(message_id: str) -> Message:
    return Message(type=PRIVATE, id=message_id, from_user_id="a", to_user_id="b", content="x", created_at=0,
                   client_msg_id="k")


@pytest.mark.gen_test
async def test_idempotency_keys_go_from_pending_to_delivered():
    now = [0.0]
    keys = MemoryIdempotencyKeys(now=lambda: now[0], pending_ttl=30)
    first = keyed("1")
    assert await keys.remember("a", "k", first) is None
    assert await keys.remember("a", "k", keyed("2")) == Answer(first, delivered=False)
    await keys.confirm("a", "k", first)
    assert await keys.remember("a", "k", keyed("2")) == Answer(first, delivered=True)
    await keys.forget("a", "k", first)  # a delivered answer stays
    now[0] += 10 * 86400
    assert await keys.remember("a", "k", keyed("2")) == Answer(first, delivered=True)


@pytest.mark.gen_test
async def test_a_slow_first_attempt_never_touches_the_answer_of_the_retry_that_took_its_key():
    now = [0.0]
    keys = MemoryIdempotencyKeys(now=lambda: now[0], pending_ttl=30)
    slow, retry = keyed("slow"), keyed("retry")
    await keys.remember("a", "k", slow)
    now[0] += 30  # expired
    assert await keys.remember("a", "k", retry) is None
    await keys.forget("a", "k", slow)
    await keys.confirm("a", "k", slow)
    assert await keys.remember("a", "k", keyed("3")) == Answer(retry, delivered=False)
    await keys.forget("a", "k", retry)
    assert await keys.remember("a", "k", keyed("3")) is None


@pytest.mark.gen_test
async def test_confirm_remembers_a_message_whose_pending_answer_expired():
    now = [0.0]
    keys = MemoryIdempotencyKeys(now=lambda: now[0], pending_ttl=30)
    slow = keyed("slow")
    await keys.remember("a", "k", slow)
    now[0] += 31
    await keys.confirm("a", "k", slow)
    assert await keys.remember("a", "k", keyed("2")) == Answer(slow, delivered=True)


@pytest.mark.gen_test
async def test_without_a_client_msg_id_every_send_is_a_new_message(courier):
    alice, bob = await alice_and_bob(courier)
    body = {"to_user_id": bob.id, "content": "hi"}
    first = await courier.send_private(alice.id, body)
    second = await courier.send_private(alice.id, body)
    assert first.id != second.id
    assert courier.idempotency.answers == {}


@pytest.mark.gen_test
@pytest.mark.parametrize("client_msg_id", ["", "k" * 129, 7])
async def test_an_invalid_client_msg_id_is_invalid_input(courier, client_msg_id):
    alice, bob = await alice_and_bob(courier)
    with pytest.raises(errors.InvalidInput):
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "hi", "client_msg_id": client_msg_id})


# send to a group -------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_group_message_reaches_every_member_and_the_senders_own_log(courier):
    alice, bob, carol, dave = await courier.users_named("alice", "bob", "carol", "dave")
    group = await courier.groups.create(alice.id, "team", [bob.id, carol.id])
    message = await courier.send_group(bob.id, group.id, {"content": "hello team"})
    assert message.type == GROUP
    assert (message.group_id, message.from_user_id, message.to_user_id) == (group.id, bob.id, None)
    assert inbox_ids(courier, alice.id) == [message.id]
    assert inbox_ids(courier, carol.id) == [message.id]
    assert inbox_ids(courier, bob.id) == [message.id]
    assert inbox_ids(courier, dave.id) == []
    assert set(courier.bus.published[-1].cursors) == {alice.id, bob.id, carol.id}
    assert courier.inbox.persisted == [message]  # persisted once, not once per member


@pytest.mark.gen_test
async def test_a_non_member_may_not_post_to_a_group(courier):
    alice, bob = await alice_and_bob(courier)
    group = await courier.groups.create(alice.id, "team", [])
    published = list(courier.bus.published)  # the group's creation
    with pytest.raises(errors.NotAMember):
        await courier.send_group(bob.id, group.id, {"content": "let me in"})
    assert courier.bus.published == published


@pytest.mark.gen_test
async def test_a_former_member_may_not_post(courier):
    alice, bob = await alice_and_bob(courier)
    group = await courier.groups.create(alice.id, "team", [bob.id])
    await courier.groups.remove_member(bob.id, group.id, bob.id)
    with pytest.raises(errors.NotAMember):
        await courier.send_group(bob.id, group.id, {"content": "still here?"})


@pytest.mark.gen_test
async def test_posting_to_an_unknown_group_is_not_found(courier):
    alice = await courier.user("alice")
    with pytest.raises(errors.GroupNotFound):
        await courier.send_group(alice.id, UNKNOWN_ID, {"content": "hi"})
    with pytest.raises(errors.InvalidInput):
        await courier.send_group(alice.id, "not-a-uuid", {"content": "hi"})


@pytest.mark.gen_test
async def test_group_sends_are_validated_rate_limited_and_idempotent(make_courier):
    courier = make_courier(send_rate=1, send_burst=2)
    alice, bob = await alice_and_bob(courier)
    group = await courier.groups.create(alice.id, "team", [bob.id])
    with pytest.raises(errors.ContentTooLong):
        await courier.send_group(alice.id, group.id, {"content": "x" * 4001})
    first = await courier.send_group(alice.id, group.id, {"content": "hi", "client_msg_id": "g1"})
    assert await courier.send_group(alice.id, group.id, {"content": "hi", "client_msg_id": "g1"}) == first
    assert inbox_ids(courier, bob.id) == inbox_ids(courier, alice.id) == [first.id]
    with pytest.raises(errors.RateLimited):
        await courier.send_group(alice.id, group.id, {"content": "hi"})


@pytest.mark.gen_test
async def test_a_client_msg_id_used_for_another_conversation_is_a_conflict_not_that_message(courier):
    """Found by schemathesis: a private send whose client_msg_id had gone with a group send
    answered 201 with the group message (a private send's answer of another type, to
    someone else). A client_msg_id retries one message: sent again to another
    conversation, it is a 409 and sends nothing."""
    alice, bob = await alice_and_bob(courier)
    carol = await courier.user("carol")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    first = await courier.send_group(alice.id, group.id, {"content": "hi", "client_msg_id": "k"})
    with pytest.raises(errors.ClientMsgIdReused) as refused:
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "hi", "client_msg_id": "k"})
    assert status_of(refused.value) == 409
    to_bob = await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "hi", "client_msg_id": "p"})
    with pytest.raises(errors.ClientMsgIdReused):
        await courier.send_private(alice.id, {"to_user_id": carol.id, "content": "hi", "client_msg_id": "p"})
    other = await courier.groups.create(alice.id, "other", [bob.id])
    with pytest.raises(errors.ClientMsgIdReused):
        await courier.send_group(alice.id, other.id, {"content": "hi", "client_msg_id": "k"})
    assert inbox_ids(courier, bob.id) == [first.id, to_bob.id]
    assert inbox_ids(courier, carol.id) == []
    # the very same send again is still the original
    assert await courier.send_group(alice.id, group.id, {"content": "hi", "client_msg_id": "k"}) == first


@pytest.mark.gen_test
async def test_a_group_of_one_accepts_a_message_for_its_sender_alone(courier):
    alice = await courier.user("alice")
    group = await courier.groups.create(alice.id, "me", [])
    message = await courier.send_group(alice.id, group.id, {"content": "echo"})
    assert courier.inbox.persisted == [message]  # it is still kept for the history
    assert inbox_ids(courier, alice.id) == [message.id]  # for the sender's other devices


# pull ---------------------------------------------------------------------------------------
async def send_many(courier, sender, recipient, count):
    return [
        await courier.send_private(sender.id, {"to_user_id": recipient.id, "content": f"m{i}"}) for i in range(count)
    ]


@pytest.mark.gen_test
async def test_pull_returns_everything_oldest_first(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(carol.id, "team", [bob.id])
    sent = [
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "1"}),
        await courier.send_group(carol.id, group.id, {"content": "2"}),
        await courier.send_private(bob.id, {"to_user_id": alice.id, "content": "not for bob"}),
        await courier.send_private(carol.id, {"to_user_id": bob.id, "content": "3"}),
    ]
    result = await courier.pull(bob.id, None, None)
    assert [d.event.id for d in result.deliveries] == [sent[0].id, sent[1].id, sent[3].id]
    assert result.has_more is False
    assert result.next_cursor == result.deliveries[-1].cursor
    public = [d.public() for d in result.deliveries]
    assert public[1]["group_id"] == group.id and public[1]["type"] == "group"
    assert all("cursor" in p for p in public)


@pytest.mark.gen_test
async def test_pull_after_a_cursor(courier):
    alice, bob = await alice_and_bob(courier)
    sent = await send_many(courier, alice, bob, 5)
    first = await courier.pull(bob.id, None, "2")
    rest = await courier.pull(bob.id, first.next_cursor, None)
    assert [d.event.id for d in rest.deliveries] == [m.id for m in sent[2:]]


@pytest.mark.gen_test
async def test_pull_limit_defaults_to_50_and_is_at_most_200(courier):
    alice, bob = await alice_and_bob(courier)
    await send_many(courier, alice, bob, 201)
    default = await courier.pull(bob.id, None, None)
    assert len(default.deliveries) == 50 and default.has_more
    largest = await courier.pull(bob.id, None, "200")
    assert len(largest.deliveries) == 200 and largest.has_more
    for bad in ["201", "0", "-1", "ten", "2.5"]:
        with pytest.raises(errors.InvalidInput):
            await courier.pull(bob.id, None, bad)


@pytest.mark.gen_test
async def test_paging_through_the_pull_returns_every_message_exactly_once(courier):
    alice, bob = await alice_and_bob(courier)
    sent = await send_many(courier, alice, bob, 23)
    seen, cursor, pages = [], None, 0
    while True:
        result = await courier.pull(bob.id, cursor, "5")
        seen += [d.event.id for d in result.deliveries]
        cursor, pages = result.next_cursor, pages + 1
        if pages == 2:  # a message accepted between two pages is not missed
            sent += await send_many(courier, alice, bob, 1)
        if not result.has_more:
            break
    assert seen == [m.id for m in sent]
    assert pages == 5  # 24 messages by 5, and has_more is exact: no empty last page
    later = await courier.pull(bob.id, cursor, None)
    assert later.deliveries == [] and later.has_more is False
    assert later.next_cursor == cursor  # nothing new: the same cursor to come back with


@pytest.mark.gen_test
async def test_has_more_is_false_when_the_page_is_exactly_full(courier):
    alice, bob = await alice_and_bob(courier)
    await send_many(courier, alice, bob, 5)
    result = await courier.pull(bob.id, None, "5")
    assert len(result.deliveries) == 5 and result.has_more is False


@pytest.mark.gen_test
async def test_pull_of_an_empty_inbox(courier):
    bob = await courier.user("bob")
    result = await courier.pull(bob.id, None, None)
    assert (result.deliveries, result.next_cursor, result.has_more) == ([], None, False)


@pytest.mark.gen_test
async def test_cursors_increase_strictly_per_user(courier):
    alice, bob = await alice_and_bob(courier)
    await send_many(courier, alice, bob, 12)
    positions = [tuple(map(int, d.cursor.split("-"))) for d in (await courier.pull(bob.id, None, None)).deliveries]
    assert positions == sorted(set(positions))


@pytest.mark.gen_test
@pytest.mark.parametrize("cursor", ["garbage", "12", "1-2-3", "-1-0", "\u0661-0"])
async def test_pull_with_an_invalid_cursor_is_invalid(courier, cursor):
    bob = await courier.user("bob")
    with pytest.raises(errors.InvalidCursor):
        await courier.pull(bob.id, cursor, None)


@pytest.mark.gen_test
async def test_a_cursor_older_than_what_is_retained_has_expired(make_courier):
    courier = make_courier(inbox_max_length=3)
    alice, bob = await alice_and_bob(courier)
    sent = await send_many(courier, alice, bob, 2)
    early = (await courier.pull(bob.id, None, "1")).next_cursor  # after sent[0]
    sent += await send_many(courier, alice, bob, 3)  # sent[0] and sent[1] are trimmed
    with pytest.raises(errors.CursorExpired):
        await courier.pull(bob.id, early, None)
    # no cursor means from the start of what is retained
    retained = await courier.pull(bob.id, None, None)
    assert [d.event.id for d in retained.deliveries] == [m.id for m in sent[2:]]
    # a cursor at the last trimmed entry has missed nothing
    at_trim = courier.inbox._trimmed_up_to[bob.id]
    result = await courier.pull(bob.id, f"{at_trim[0]}-{at_trim[1]}", None)
    assert [d.event.id for d in result.deliveries] == [m.id for m in sent[2:]]


# history -----------------------------------------------------------------------------------
async def page_through(read, page_size: str):
    seen, before, pages = [], None, 0
    while True:
        page = await read(before, page_size)
        seen += [m.id for m in page.messages]
        pages += 1
        if page.next_before is None:
            return seen, pages
        before = page.next_before


@pytest.mark.gen_test
async def test_private_history_has_both_directions_newest_first_and_pages(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    conversation = []
    for i in range(7):
        sender, recipient = (alice, bob) if i % 2 == 0 else (bob, alice)
        conversation.append(await courier.send_private(sender.id, {"to_user_id": recipient.id, "content": str(i)}))
        await courier.send_private(carol.id, {"to_user_id": alice.id, "content": "noise"})
    await courier.persist_all()

    def read_as(user, peer):
        return lambda before, limit: courier.history.private(user.id, peer.id, before, limit)

    newest_first = [m.id for m in reversed(conversation)]
    assert await page_through(read_as(alice, bob), "3") == (newest_first, 3)
    assert await page_through(read_as(bob, alice), "3") == (newest_first, 3)
    assert await page_through(read_as(alice, bob), "7") == (newest_first, 1)
    assert (await courier.history.private(alice.id, bob.id, None, None)).messages[0].id == conversation[-1].id


@pytest.mark.gen_test
async def test_private_history_with_an_unknown_or_invalid_peer(courier):
    alice = await courier.user("alice")
    with pytest.raises(errors.UserNotFound):
        await courier.history.private(alice.id, UNKNOWN_ID, None, None)
    with pytest.raises(errors.InvalidInput):
        await courier.history.private(alice.id, "nope", None, None)


@pytest.mark.gen_test
@pytest.mark.parametrize(("before", "limit"), [("abc", None), ("-1", None), (None, "0"), (None, "201"), (None, "x")])
async def test_history_refuses_malformed_paging(courier, before, limit):
    alice, bob = await alice_and_bob(courier)
    group = await courier.groups.create(alice.id, "team", [bob.id])
    with pytest.raises(errors.InvalidInput):
        await courier.history.private(alice.id, bob.id, before, limit)
    with pytest.raises(errors.InvalidInput):
        await courier.history.group(alice.id, group.id, before, limit)


@pytest.mark.gen_test
async def test_group_history_pages_newest_first_for_members_only(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    other = await courier.groups.create(alice.id, "other", [bob.id])
    sent = []
    for i in range(5):
        sender = alice if i % 2 else bob
        sent.append(await courier.send_group(sender.id, group.id, {"content": str(i)}))
        await courier.send_group(alice.id, other.id, {"content": "elsewhere"})
        await courier.send_private(alice.id, {"to_user_id": bob.id, "content": "private"})
    await courier.persist_all()
    seen = await page_through(lambda before, limit: courier.history.group(bob.id, group.id, before, limit), "2")
    assert seen == ([m.id for m in reversed(sent)], 3)
    with pytest.raises(errors.NotAMember):
        await courier.history.group(carol.id, group.id, None, None)
    with pytest.raises(errors.GroupNotFound):
        await courier.history.group(alice.id, UNKNOWN_ID, None, None)


@pytest.mark.gen_test
async def test_history_is_empty_before_anything_is_said(courier):
    alice, bob = await alice_and_bob(courier)
    page = await courier.history.private(alice.id, bob.id, None, None)
    assert (page.messages, page.next_before) == ([], None)
