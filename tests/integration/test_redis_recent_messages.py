"""RedisRecentMessages against a real Redis (one, and the cluster with its layout): a
message accepted and not stored yet is found among the newest entries of the caller's log,
else in the backlog (stream:persist, or a bucket's {t}:persist on a cluster) however far
back it is in the log; what is in neither is None; a backlog longer than the adapter
reads at once answers "try again" (503) rather than "no such message"."""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.inbox import INBOX_KEY
from adapters.redis.large_group_keys import LargeGroupKeys
from adapters.redis.recent import RedisRecentMessages
from domain import errors
from domain.model import PRIVATE, Message

pytestmark = pytest.mark.redis

LOOK_BACK = 5


def message(sender: str, to: str, seq: int) -> Message:
    return Message(PRIVATE, str(uuid.uuid4()), sender, f"hello {seq}", 1_700_000_000 + seq, to_user_id=to,
                   client_msg_id=f"c{seq}", seq=seq)


@dataclass
class Layout:
    """Where the logs and the backlog are, and the adapter that reads them there."""
    client: Any
    log: Callable[[str], str]
    persist: str  # the backlog stream the tests fill (on a cluster: one bucket's of many)
    make: Callable[..., RedisRecentMessages]
    large_groups: LargeGroupKeys  # where a user's large groups are listed

    def recent(self, **kwargs) -> RedisRecentMessages:
        return self.make(**kwargs)


@pytest.fixture(params=["single", "cluster"])
def layout(request) -> Layout:
    if request.param == "single":
        client = request.getfixturevalue("redis_client")
        persist = f"courier-test:persist:{uuid.uuid4().hex}"
        return Layout(client, INBOX_KEY.format, persist,
                      lambda **kwargs: RedisRecentMessages(client, persist_streams=[persist], **kwargs),
                      LargeGroupKeys())
    client = request.getfixturevalue("redis_cluster_target").client
    keys = ClusterKeys(Buckets())
    return Layout(client, keys.log, keys.persist(random.randrange(keys.buckets.count)),
                  lambda **kwargs: RedisRecentMessages.on_cluster(client, keys, **kwargs), LargeGroupKeys(keys))


async def accepted(layout: Layout, inbox_users: list[str], sent: Message, stored: bool) -> None:
    """As a send leaves it: an entry in each log, and one in the backlog until stored."""
    record = orjson.dumps(sent.to_record())
    for user_id in inbox_users:
        await layout.client.xadd(layout.log(user_id), {"m": record})
    if not stored:
        await layout.client.xadd(layout.persist, {"m": record})


def users() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.gen_test(timeout=20)
async def test_found_in_the_log_or_in_the_backlog_however_far_back(layout):
    alice, bob = users()
    recent = layout.recent(look_back=LOOK_BACK, backlog_limit=100)
    old_unstored = message(alice, bob, 1)
    await accepted(layout, [alice, bob], old_unstored, stored=False)
    later = [message(alice, bob, seq) for seq in range(2, 40)]  # the log moves on, partly stored
    for sent in later:
        await accepted(layout, [alice, bob], sent, stored=sent.seq % 2 == 0)
    newest = later[-1]

    assert await recent.find(alice, newest.id) == newest  # among the newest LOOK_BACK of the log
    assert await recent.find(bob, old_unstored.id) == old_unstored  # 39 entries back: from the backlog
    assert await recent.find(alice, later[2].id) is None  # seq 4: stored (the MessageStore has it)
    assert await recent.find(alice, later[1].id) == later[1]  # seq 3, unstored, beyond the look-back
    assert await recent.find(alice, str(uuid.uuid4())) is None


@pytest.mark.gen_test(timeout=20)
async def test_a_stored_message_beyond_the_look_back_is_not_waiting(layout):
    alice, bob = users()
    recent = layout.recent(look_back=LOOK_BACK, backlog_limit=100)
    stored = message(alice, bob, 1)
    await accepted(layout, [alice, bob], stored, stored=True)
    for seq in range(2, 12):
        await accepted(layout, [alice, bob], message(alice, bob, seq), stored=False)
    assert await recent.find(alice, stored.id) is None  # the MessageStore has it


@pytest.mark.gen_test(timeout=20)
async def test_a_backlog_too_long_to_read_answers_try_again(layout):
    alice, bob = users()
    recent = layout.recent(look_back=LOOK_BACK, backlog_limit=3 * LOOK_BACK)
    for seq in range(1, 4 * LOOK_BACK):
        await accepted(layout, [alice, bob], message(alice, bob, seq), stored=False)
    last_in_reach = 3 * LOOK_BACK
    reachable = orjson.loads((await layout.client.xrange(layout.persist, count=last_in_reach))[-1][1][b"m"])
    assert (await recent.find(alice, reachable["id"])).id == reachable["id"]
    with pytest.raises(errors.ServiceUnavailable):
        await recent.find(alice, str(uuid.uuid4()))


@pytest.mark.gen_test(timeout=20)
async def test_a_large_groups_message_is_found_in_its_groups_persist_stream(layout):
    """In no member's log: in lg:{G}:persist, for a user whose lgm:<U> names the group."""
    from adapters.redis.group_streams import PERSIST
    from domain.model import GROUP

    member, outsider = users()
    group_id = str(uuid.uuid4())
    sent = Message(GROUP, str(uuid.uuid4()), member, "in the stream", 1_700_000_000, group_id=group_id, seq=1)
    await layout.client.xadd(PERSIST.format(group_id), {"m": orjson.dumps(sent.to_record())})
    await layout.client.sadd(layout.large_groups.groups_of(member), group_id)
    recent = layout.recent(look_back=LOOK_BACK, backlog_limit=100)
    assert await recent.find(member, sent.id) == sent
    assert await recent.find(outsider, sent.id) is None
