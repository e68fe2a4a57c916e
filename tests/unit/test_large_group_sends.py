"""A large group's message through the use case (application/messaging.py,
docs/design/large-groups.md sections 4.1 and 4.4): one append to the group's stream,
the sender's client_msg_id confirmed after it; a group whose switch is not applied yet
still fans out; a group that switched under a send goes to the stream, once."""
from __future__ import annotations

import pytest

from adapters.clock import UuidGenerator
from adapters.memory.limits import MemoryRateLimiter
from application.messaging import Dispatcher, SendGroupMessage
from application.ports import Accepted, GroupPosted
from domain import errors
from domain.model import Group, Message
from tests.fakes.clock import FakeClock
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.repositories import MemoryGroupRepository

OWNER, BOB = "0b9c1e2a-0000-4000-8000-000000000001", "0b9c1e2a-0000-4000-8000-000000000002"
GROUP = "0b9c1e2a-0000-4000-8000-0000000000a1"


class ScriptedStreams:
    """A GroupStreams whose deliver answers what the test lists, one answer per call
    (an exception to raise, or "post": accepted with the next seq)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.delivered: list[Message] = []
        self.originals: dict[tuple[str, str | None], GroupPosted] = {}

    async def deliver(self, message: Message) -> GroupPosted:
        answer = self.answers.pop(0) if self.answers else "post"
        if isinstance(answer, Exception):
            raise answer
        key = (message.from_user_id, message.client_msg_id)
        if message.client_msg_id is not None and key in self.originals:
            original = self.originals[key]
            return GroupPosted(original.message, original.position, duplicate=True)
        self.delivered.append(message)
        posted = GroupPosted(message.with_seq(len(self.delivered)), (len(self.delivered), 0))
        self.originals[key] = posted
        return posted


class ScriptedInbox:
    """The small path: answers GroupIsLarge while `large`, else appends (and confirms the
    key, as Inbox.deliver does)."""

    def __init__(self, idempotency: MemoryIdempotencyKeys, large: int = 0):
        self.idempotency = idempotency
        self.large = large  # how many deliveries to refuse with GroupIsLarge
        self.appended: list[tuple[Message, list[str]]] = []

    async def deliver(self, message: Message, recipient_ids: list[str]) -> Accepted:
        if self.large:
            self.large -= 1
            raise errors.GroupIsLarge()
        accepted = message.with_seq(100 + len(self.appended))
        self.appended.append((accepted, recipient_ids))
        if message.client_msg_id is not None:
            self.idempotency.mark_delivered(message.from_user_id, message.client_msg_id, accepted)
        return Accepted(accepted, dict.fromkeys(recipient_ids, "1-0"))


async def make(streams, *, large_in_sql: bool, inbox_large: int = 0):
    """The use case over fakes, with its group stored (large in SQL or not)."""
    clock = FakeClock()
    keys = MemoryIdempotencyKeys(now=clock.now)
    inbox = ScriptedInbox(keys, inbox_large)
    dispatcher = Dispatcher(inbox, keys, MemoryRateLimiter(clock, 0, 0), clock, UuidGenerator(), 4000,  # type: ignore[arg-type]
                            pending_wait=0)
    groups = MemoryGroupRepository()
    group = Group(id=GROUP, name="big", owner_id=OWNER, member_ids=[OWNER, BOB], stream=7 if large_in_sql else None)
    await groups.add(group)
    return SendGroupMessage(dispatcher, groups, streams), groups, group, inbox, keys  # type: ignore[arg-type]


@pytest.mark.gen_test
async def test_a_large_groups_message_is_one_append_to_its_stream_and_its_key_is_confirmed():
    streams = ScriptedStreams()
    send, groups, group, inbox, keys = await make(streams, large_in_sql=True)
    message = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert message.seq == 1 and [m.id for m in streams.delivered] == [message.id]
    assert inbox.appended == []
    assert keys.entries[(BOB, "k1")].delivered and keys.entries[(BOB, "k1")].message.seq == 1
    again = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert again.id == message.id and len(streams.delivered) == 1


@pytest.mark.gen_test
async def test_a_retry_the_stream_already_holds_gets_the_original_and_the_key_answers_it():
    # The first attempt's answer was lost (its key expired while pending): the retry takes
    # the key, the stream says DUP, and the key then answers the original.
    streams = ScriptedStreams()
    send, groups, group, inbox, keys = await make(streams, large_in_sql=True)
    first = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    del keys.entries[(BOB, "k1")]
    retry = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert retry.id == first.id and len(streams.delivered) == 1
    assert keys.entries[(BOB, "k1")].delivered and keys.entries[(BOB, "k1")].message.id == first.id


@pytest.mark.gen_test
async def test_a_group_whose_switch_is_not_applied_yet_fans_out_as_before():
    streams = ScriptedStreams(errors.NoGroupStream())
    send, groups, group, inbox, keys = await make(streams, large_in_sql=True)
    message = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert streams.delivered == [] and [(m.id, r) for m, r in inbox.appended] == [(message.id, [OWNER, BOB])]
    assert keys.entries[(BOB, "k1")].delivered


@pytest.mark.gen_test
async def test_a_switch_applied_between_the_streams_no_and_the_small_paths_large_goes_to_the_stream_once():
    streams = ScriptedStreams(errors.NoGroupStream())
    send, groups, group, inbox, keys = await make(streams, large_in_sql=True, inbox_large=1)
    message = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert [m.id for m in streams.delivered] == [message.id] and inbox.appended == []
    assert keys.entries[(BOB, "k1")].delivered


@pytest.mark.gen_test
async def test_no_stream_state_and_a_poisoned_counter_together_answer_503_not_a_loop():
    streams = ScriptedStreams(errors.NoGroupStream(), errors.NoGroupStream())
    send, groups, group, inbox, keys = await make(streams, large_in_sql=True, inbox_large=2)
    with pytest.raises(errors.GroupIsLarge):
        await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert (BOB, "k1") not in keys.entries  # let go: a retry may send it


@pytest.mark.gen_test
async def test_a_group_read_as_small_that_switched_meanwhile_goes_to_the_stream():
    streams = ScriptedStreams()
    send, groups, group, inbox, keys = await make(streams, large_in_sql=False, inbox_large=1)

    async def switched(group_id: str) -> Group | None:  # the reload after LARGE reads the switch
        return Group(id=GROUP, name="big", owner_id=OWNER, member_ids=[OWNER, BOB], stream=7)

    reads = iter([group])

    async def get(group_id: str) -> Group | None:
        return next(reads, None) or await switched(group_id)

    groups.get = get  # type: ignore[method-assign]
    message = await send(BOB, GROUP, {"content": "hi"})
    assert [m.id for m in streams.delivered] == [message.id] and inbox.appended == []


@pytest.mark.gen_test
async def test_a_failed_append_to_the_stream_lets_the_key_go():
    streams = ScriptedStreams(errors.ServiceUnavailable("redis down"))
    send, groups, group, inbox, keys = await make(streams, large_in_sql=True)
    with pytest.raises(errors.ServiceUnavailable):
        await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert (BOB, "k1") not in keys.entries
    message = await send(BOB, GROUP, {"content": "hi", "client_msg_id": "k1"})
    assert [m.id for m in streams.delivered] == [message.id]


@pytest.mark.gen_test
async def test_with_large_groups_off_a_switched_group_is_a_503():
    send, groups, group, inbox, keys = await make(None, large_in_sql=False, inbox_large=1)
    with pytest.raises(errors.GroupIsLarge):
        await send(BOB, GROUP, {"content": "hi"})
