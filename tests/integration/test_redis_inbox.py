"""RedisInbox against a real Redis: fan-out, reads, trimming, the notification."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import orjson
import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.redis.inbox import CURSOR_GENERATOR, RedisInbox, trim_every
from adapters.redis.subscriber import parse_notification
from domain import errors
from domain.model import GROUP, PRIVATE, Message, cursor_position
from tests.services.redis import make_client
from tests.services.reply_dropper import ReplyDropper

pytestmark = pytest.mark.redis


def private(content: str = "hello", sender: str = "a", to: str = "b", **kw) -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


def group_message(content: str = "hi all", sender: str = "a") -> Message:
    return Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=sender, group_id=str(uuid.uuid4()),
                   content=content, created_at=1_700_000_000)


@pytest.mark.gen_test
async def test_deliver_appends_to_each_inbox_and_read_returns_them_in_order(redis_client):
    inbox = RedisInbox(redis_client)
    cursors = [await inbox.deliver(private(f"m{i}"), ["b", "c"]) for i in range(5)]
    sent = [accepted.message for accepted in cursors]
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5]

    for user in ("b", "c"):
        got = await inbox.read(user, None, 100)
        assert [d.event for d in got] == sent
        assert [d.cursor for d in got] == [c[user] for c in cursors]
        positions = [cursor_position(d.cursor) for d in got]
        assert positions == sorted(positions) and len(set(positions)) == 5
    assert await inbox.read("nobody", None, 10) == []


@pytest.mark.gen_test
async def test_read_after_a_cursor_is_exclusive_and_limited(redis_client):
    inbox = RedisInbox(redis_client)
    cursors = [(await inbox.deliver(private(f"m{i}"), ["b"]))["b"] for i in range(6)]

    page = await inbox.read("b", cursors[1], 3)
    assert [d.cursor for d in page] == cursors[2:5]
    assert [d.event.content for d in page] == ["m2", "m3", "m4"]
    assert await inbox.read("b", cursors[-1], 10) == []
    assert await inbox.read("b", "0-0", 2) == (await inbox.read("b", None, 2))  # nothing trimmed yet
    assert await inbox.read("b", None, 0) == []


@pytest.mark.gen_test
async def test_last_cursor(redis_client):
    inbox = RedisInbox(redis_client)
    assert await inbox.last_cursor("b") is None
    await inbox.deliver(private("one"), ["b"])
    last = (await inbox.deliver(private("two"), ["b"]))["b"]
    assert await inbox.last_cursor("b") == last


@pytest.mark.gen_test
async def test_group_fan_out_and_duplicate_recipients(redis_client):
    inbox = RedisInbox(redis_client)
    message = group_message()
    members = [f"user-{i}" for i in range(300)]
    cursors = await inbox.deliver(message, members + members[:3])  # listed twice: still once each
    assert list(cursors) == members
    for user in (members[0], members[-1]):
        (delivery,) = await inbox.read(user, None, 10)
        assert delivery.event.group_id == message.group_id and delivery.cursor == cursors[user]


@pytest.mark.gen_test
async def test_one_cursor_for_every_recipient_of_a_message(redis_client):
    """deliver.lua appends a message with one entry id to every inbox, so a gateway can
    send every member the same bytes; each user's cursors still strictly increase."""
    inbox = RedisInbox(redis_client)
    members = [f"user-{i}" for i in range(50)]
    sent = [await inbox.deliver(group_message(f"g{i}"), members) for i in range(5)]
    sent.append(await inbox.deliver(private("p"), ["user-3"]))
    sent.append(await inbox.deliver(group_message("g5"), members))
    for cursors in sent:
        assert len(set(cursors.values())) == 1
    shared = [next(iter(c.values())) for c in sent]
    assert [cursor_position(c) for c in shared] == sorted({cursor_position(c) for c in shared})
    assert [d.cursor for d in await inbox.read("user-3", None, 10)] == shared
    assert [d.cursor for d in await inbox.read("user-4", None, 10)] == shared[:5] + shared[6:]


@pytest.mark.gen_test
async def test_an_inbox_ahead_of_the_generator_gets_a_cursor_of_its_own(redis_client, channel):
    """An inbox may hold a later id than the generator knows (the generator key was lost,
    or an older Courier appended with '*' ids): that inbox gets the next id of its own,
    the others keep the shared one, and the generator moves past both."""
    inbox = RedisInbox(redis_client, channel=channel)
    ahead = "99999999999999-5"
    await redis_client.xadd("stream:private:c", {"m": b"{}"}, id=ahead)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    try:
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        first = await inbox.deliver(group_message("one"), ["b", "c", "d"])
        assert first["b"] == first["d"] and cursor_position(first["c"]) > cursor_position(ahead)
        assert parse_notification((await pubsub.get_message(timeout=2))["data"]).cursors == first
        second = await inbox.deliver(group_message("two"), ["b", "c", "d"])
        assert len(set(second.values())) == 1
        for user in ("b", "c", "d"):
            assert cursor_position(second[user]) > cursor_position(first[user])
        await redis_client.delete(CURSOR_GENERATOR)  # lost: appends stay in order all the same
        third = await inbox.deliver(group_message("three"), ["b", "c", "d"])
        for user in ("b", "c", "d"):
            assert cursor_position(third[user]) > cursor_position(second[user])
            assert [d.cursor for d in await inbox.read(user, first[user], 10)] == [second[user], third[user]]
    finally:
        await pubsub.aclose()


@pytest.mark.gen_test
async def test_persist_stream_gets_the_full_record_once(redis_client):
    inbox = RedisInbox(redis_client)
    message = (await inbox.deliver(private("keep me", client_msg_id="c-1"), ["b", "c"])).message
    (entry,) = await redis_client.xrange("stream:persist")
    assert Message.from_record(orjson.loads(entry[1][b"m"])) == message  # client_msg_id included
    (inbox_entry,) = await redis_client.xrange("stream:private:b")
    assert b"client_msg_id" not in inbox_entry[1][b"m"]


@pytest.mark.gen_test
async def test_a_message_with_no_recipient_is_still_persisted(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    assert await inbox.deliver(group_message(), []) == {}
    assert await redis_client.xlen("stream:persist") == 1


@pytest.mark.gen_test
async def test_notification_carries_the_message_and_each_cursor(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    try:
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        sent = [private(f"n{i}", client_msg_id=f"c{i}") for i in range(3)]
        cursors = [await inbox.deliver(m, ["b", "c"]) for m in sent]
        for expected in cursors:
            message = expected.message
            received = await pubsub.get_message(timeout=2)
            body = orjson.loads(received["data"])
            assert parse_notification(received["data"]).event == message  # with its client_msg_id and seq
            assert parse_notification(received["data"]).cursors == expected
            assert body["to"] == ["b", "c"] and body["cursor"] == expected["b"] == expected["c"]
            assert "own" not in body  # every recipient shares the one cursor
            # The typed envelope (adapters/redis/envelope.py) with the full record: the gateway
            # shows client_msg_id to its sender alone (Delivery.public_for).
            # The seq, taken by the script, rides beside the record.
            assert body["kind"] == "event" and body["seq"] == message.seq
            assert body["event"] == {k: v for k, v in message.to_record().items() if k != "seq"}
    finally:
        await pubsub.aclose()


@pytest.mark.gen_test
async def test_content_is_kept_byte_for_byte(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    contents = [
        "😀👍🏽 family: 👨‍👩‍👧",
        "你好，世界",
        "<b>not html</b> & \"quotes\" \\ / \u2028",
        "  spaced\n\t",
        "é" * 4000,
    ]
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    try:
        await pubsub.get_message(timeout=2)
        for content in contents:
            await inbox.deliver(private(content), ["b"])
        read = [d.event.content for d in await inbox.read("b", None, 10)]
        assert read == contents
        for content in contents:
            body = orjson.loads((await pubsub.get_message(timeout=2))["data"])
            assert body["event"]["content"].encode("utf-8") == content.encode("utf-8")
    finally:
        await pubsub.aclose()


@pytest.mark.gen_test
async def test_exact_trimming_expires_old_cursors(redis_client):
    inbox = RedisInbox(redis_client, max_length=3, exact_trim=True)
    cursors = [(await inbox.deliver(private(f"m{i}"), ["b"]))["b"] for i in range(6)]
    assert [d.cursor for d in await inbox.read("b", None, 10)] == cursors[3:]
    # A cursor inside what is retained reads on; an older one, and "0-0", are expired.
    assert [d.cursor for d in await inbox.read("b", cursors[3], 10)] == cursors[4:]
    for old in (cursors[0], cursors[1], "0-0"):
        with pytest.raises(errors.CursorExpired):
            await inbox.read("b", old, 10)
    # Another user's inbox was never trimmed.
    await inbox.deliver(private("x"), ["c"])
    assert len(await inbox.read("c", "0-0", 10)) == 1


@pytest.mark.gen_test
async def test_approximate_trimming_expires_old_cursors(redis_client):
    # "~" trims whole macro nodes (100 entries by default): send enough to drop some.
    inbox = RedisInbox(redis_client, max_length=100)
    message = private("x")
    cursors = [(await inbox.deliver(message, ["b"]))["b"] for _ in range(450)]
    retained = await inbox.read("b", None, 1000)
    assert 100 <= len(retained) < 450
    assert [d.cursor for d in retained] == cursors[-len(retained):]
    with pytest.raises(errors.CursorExpired):
        await inbox.read("b", cursors[0], 10)
    assert len(await inbox.read("b", cursors[-len(retained)], 1000)) == len(retained) - 1


def test_how_often_an_inbox_is_trimmed():
    assert [trim_every(n, exact=False) for n in (5, 100, 199, 200, 1_000, 1_600, 10_000)] == [1, 1, 1, 2, 10, 16, 16]
    assert trim_every(10_000, exact=True) == 1


@pytest.mark.gen_test(timeout=60)
async def test_approximate_trimming_keeps_every_inbox_near_its_bound(redis_client):
    """With a MAXLEN of 1,600 an inbox is trimmed on about one append in 16, at random
    (deliver.lua): between two trims it grows by a few dozen entries, never without
    bound. (The chance that one inbox goes 300 appends untrimmed is (15/16)**300, 4e-9.)"""
    inbox = RedisInbox(redis_client, max_length=1_600)
    members = ["m0", "m1", "m2"]
    for i in range(2_500):
        await inbox.deliver(group_message(f"g{i}"), members)
    lengths = [await redis_client.xlen(f"stream:private:{member}") for member in members]
    # At most: the bound, one macro node '~' may keep, and the appends since the last trim.
    assert all(1_600 <= length < 1_600 + 100 + 300 for length in lengths), lengths
    with pytest.raises(errors.CursorExpired):
        await inbox.read("m0", "0-0", 10)


@pytest.mark.gen_test
async def test_malformed_and_huge_cursors(redis_client):
    inbox = RedisInbox(redis_client)
    await inbox.deliver(private(), ["b"])
    for bad in ("abc", "1", "1-2-3", "99999999999999999999-0"):
        with pytest.raises(errors.InvalidCursor):
            await inbox.read("b", bad, 10)
    with pytest.raises(errors.CursorUnknown):  # no entry ever gets the largest id
        await inbox.read("b", "18446744073709551615-18446744073709551615", 10)


@pytest.mark.gen_test
async def test_a_cursor_after_the_newest_entry_is_unknown(redis_client):
    inbox = RedisInbox(redis_client)
    assert await inbox.read("b", "0-0", 10) == []  # an empty inbox knows only the start
    with pytest.raises(errors.CursorUnknown):
        await inbox.read("b", "5-0", 10)
    first = (await inbox.deliver(private("one"), ["b"]))["b"]
    newest = (await inbox.deliver(private("two"), ["b"]))["b"]
    assert await inbox.read("b", newest, 10) == []  # the newest entry: nothing after it yet
    assert [d.cursor for d in await inbox.read("b", first, 10)] == [newest]
    ms, seq = cursor_position(newest)
    for made_up in (f"{ms}-{seq + 1}", f"{ms + 1}-0"):
        with pytest.raises(errors.CursorUnknown):
            await inbox.read("b", made_up, 10)
    with pytest.raises(errors.CursorExpired):  # what the gateway and the pull catch
        await inbox.read("b", f"{ms + 1}-0", 10)


@pytest.mark.gen_test
async def test_deliver_loads_the_script_again_after_a_flush(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    await inbox.deliver(private("one"), ["b"])
    await redis_client.script_flush()  # as after a Redis restart
    await inbox.deliver(private("two"), ["b"])
    assert [d.event.content for d in await inbox.read("b", None, 10)] == ["one", "two"]


@pytest.mark.gen_test
async def test_concurrent_delivers_go_out_together_and_each_lands_once(redis_client, channel):
    """The sends of one turn of the loop share one write (BatchedScript); each is
    answered with its own cursors, and after a script flush all are sent again once."""
    inbox = RedisInbox(redis_client, channel=channel)
    sent = [private(f"m{i}", to=f"r{i % 5}") for i in range(40)]
    answers = await asyncio.gather(*(inbox.deliver(m, [m.to_user_id]) for m in sent))
    await redis_client.script_flush()  # as after a Redis restart: the whole next batch is NOSCRIPT
    more = [private(f"n{i}", to=f"r{i % 5}") for i in range(40)]
    answers += await asyncio.gather(*(inbox.deliver(m, [m.to_user_id]) for m in more))
    for message, cursors in zip(sent + more, answers, strict=True):
        got = await inbox.read(message.to_user_id, None, 200)
        assert [d.cursor for d in got if d.event.id == message.id] == [cursors[message.to_user_id]]
    assert await redis_client.xlen("stream:persist") == 80
    assert sum([await redis_client.xlen(f"stream:private:r{i}") for i in range(5)]) == 80


@pytest.mark.gen_test
async def test_an_error_reply_fails_its_own_deliver_only(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    await redis_client.set("stream:private:broken", "not a stream")
    good, bad = private("fine", to="b"), private("doomed", to="broken")
    results = await asyncio.gather(inbox.deliver(good, ["b"]), inbox.deliver(bad, ["broken"]),
                                   return_exceptions=True)
    assert isinstance(results[0], dict) and "b" in results[0]
    assert isinstance(results[1], Exception)
    assert [d.event.content for d in await inbox.read("b", None, 10)] == ["fine"]


@pytest.mark.gen_test(timeout=10)
async def test_a_deliver_whose_reply_is_lost_is_not_sent_again(private_redis, channel):
    # A client that retries (as Redis(host, port) does 10 times by default) would send
    # the script again, and the message would be appended and published twice.
    proxy = ReplyDropper(private_redis.port)
    client = make_client(await proxy.start(), retry=Retry(NoBackoff(), 3))
    try:
        inbox = RedisInbox(client, channel=channel)
        await inbox.deliver(private("warm-up"), ["c"])  # connected, and the script is loaded
        proxy.armed = True
        with pytest.raises(errors.ServiceUnavailable):
            await inbox.deliver(private("once"), ["b"])
        assert private_redis.command("XLEN", "stream:private:b") == 1  # it did run, once
        assert private_redis.command("XLEN", "stream:persist") == 2
        await inbox.deliver(private("next"), ["b"])  # the pool makes a new connection
        assert private_redis.command("XLEN", "stream:private:b") == 2
    finally:
        await client.aclose()
        await proxy.close()


@pytest.mark.gen_test(timeout=30)
async def test_after_a_redis_restart_a_deliver_goes_out_on_a_new_connection(private_redis, channel):
    """The production client (entrypoints.container) hands out no pooled connection the
    server closed: the deliver after a restart is not lost on a dead socket (503)."""
    from entrypoints.container import _redis_client

    client = _redis_client(private_redis.url)
    try:
        inbox = RedisInbox(client, channel=channel)
        await inbox.deliver(private("before"), ["b"])  # its connection goes back to the pool
        private_redis.stop()
        private_redis.start()
        await asyncio.sleep(0.05)  # the loop sees the server's close
        await inbox.deliver(private("after"), ["b"])
        assert [d.event.content for d in await inbox.read("b", None, 10)] == ["before", "after"]
    finally:
        await client.aclose()


# Message.seq: one counter per conversation, in deliver.lua ---------------------------


@pytest.mark.gen_test
async def test_each_conversation_has_its_own_gapless_seqs(redis_client):
    inbox = RedisInbox(redis_client)
    group = group_message()
    ab = [(await inbox.deliver(private(f"ab{i}", sender, to), [to])).message.seq
          for i, (sender, to) in enumerate([("a", "b"), ("b", "a"), ("a", "b")])]
    ac = (await inbox.deliver(private("ac", "a", "c"), ["c"])).message.seq
    groups = [(await inbox.deliver(replace(group, id=str(uuid.uuid4())), ["b", "c"])).message.seq for _ in range(2)]
    alone = (await inbox.deliver(replace(group, id=str(uuid.uuid4())), [])).message.seq  # nobody to append to
    assert (ab, ac, groups, alone) == ([1, 2, 3], 1, [1, 2], 3)
    [entry] = await inbox.read("c", None, 1)
    assert entry.event.seq == 1
    assert [d.event.seq for d in await inbox.read("b", None, 10)] == [1, 3, 1, 2]
    assert int(await redis_client.get("seq:" + group.conversation)) == 3


@pytest.mark.gen_test
async def test_concurrent_senders_into_one_group_get_distinct_gapless_seqs_in_cursor_order(redis_url):
    """Two gateways (two clients, each with its own batched script) sending into one group
    at once: seqs 1..N, each once, and in the order of the recipients' cursors."""
    clients = [make_client(redis_url) for _ in range(2)]
    try:
        inboxes = [RedisInbox(client) for client in clients]
        group_id = str(uuid.uuid4())
        sends = [
            inboxes[i % 2].deliver(Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=f"sender-{i % 2}",
                                           group_id=group_id, content=f"g{i}", created_at=1), ["r"])
            for i in range(200)
        ]
        accepted = await asyncio.gather(*sends)
        assert sorted(a.message.seq for a in accepted) == list(range(1, 201))
        read = await inboxes[0].read("r", None, 500)
        assert [d.event.seq for d in read] == list(range(1, 201))  # cursor order is seq order
    finally:
        for client in clients:
            await client.aclose()


@pytest.mark.gen_test
async def test_a_missing_counter_goes_on_from_the_highest_seq_stored(redis_client):
    """Redis lost the counter (restarted without its data, or the conversation is older
    than seqs): numbering goes on after what the database holds, never reusing a seq."""
    asked = []

    async def last_seq(conversation: str) -> int:
        asked.append(conversation)
        return 41

    inbox = RedisInbox(redis_client, last_seq=last_seq)
    first = (await inbox.deliver(private("one"), ["b"])).message
    assert first.seq == 42 and asked == [first.conversation]
    assert (await inbox.deliver(private("two", "b", "a"), ["a"])).message.seq == 43
    assert len(asked) == 1  # the counter exists now: the database is not asked again
    await redis_client.delete("seq:" + first.conversation)
    assert (await inbox.deliver(private("three"), ["b"])).message.seq == 42  # what the store says
    (entry, *_) = await redis_client.xrevrange("stream:persist", count=1)
    assert orjson.loads(entry[1][b"m"])["seq"] == 42


@pytest.mark.gen_test
async def test_two_gateways_seeding_one_counter_at_once_agree(redis_url):
    """Both find the counter missing and seed it: SET NX keeps the first seed, and both
    messages get distinct seqs after it."""
    clients = [make_client(redis_url) for _ in range(2)]
    release = asyncio.Event()

    async def slow_last_seq(conversation: str) -> int:
        await release.wait()
        return 10

    try:
        inboxes = [RedisInbox(client, last_seq=slow_last_seq) for client in clients]
        sends = [asyncio.ensure_future(inbox.deliver(private(f"m{i}"), ["b"])) for i, inbox in enumerate(inboxes)]
        await asyncio.sleep(0.1)  # both asked the store
        release.set()
        assert sorted(a.message.seq for a in await asyncio.gather(*sends)) == [11, 12]
    finally:
        for client in clients:
            await client.aclose()


@pytest.mark.gen_test
async def test_a_store_that_cannot_answer_a_seed_fails_the_send_and_appends_nothing(redis_client):
    async def down(conversation: str) -> int:
        raise errors.ServiceUnavailable("database down")

    inbox = RedisInbox(redis_client, last_seq=down)
    with pytest.raises(errors.ServiceUnavailable):
        await inbox.deliver(private(), ["b"])
    assert await redis_client.xlen("stream:persist") == 0 and await inbox.read("b", None, 10) == []


@pytest.mark.gen_test
async def test_a_changed_message_keeps_its_state_for_a_while_and_no_deleted_content(redis_client):
    from adapters.redis.inbox import CHANGED_KEY, CHANGED_TTL
    from domain.events import MESSAGE_DELETED, MESSAGE_UPDATED, MessageChange, delete_event_id, edit_event_id

    inbox = RedisInbox(redis_client)
    message = (await inbox.deliver(private("secret"), ["a", "b"])).message
    edit = replace(message, content="secret!", edited_at=1_700_000_010)
    await inbox.append(MessageChange(MESSAGE_UPDATED, edit_event_id(message.id, edit.content, 1_700_000_010), edit),
                       ["a", "b"])
    key = CHANGED_KEY.format(message.id)
    assert orjson.loads(await redis_client.get(key)) == {"content": "secret!", "edited_at": 1_700_000_010,
                                                          "deleted_at": None}
    assert CHANGED_TTL - 60 < await redis_client.ttl(key) <= CHANGED_TTL
    gone = replace(message, content="", deleted_at=1_700_000_020)
    await inbox.append(MessageChange(MESSAGE_DELETED, delete_event_id(message.id), gone), ["a", "b"])
    assert orjson.loads(await redis_client.get(key)) == {"content": "", "edited_at": None,
                                                          "deleted_at": 1_700_000_020}
    [shown, *_] = await inbox.read("b", None, 10)
    assert shown.event == replace(message, content="", deleted_at=1_700_000_020)
    # Once the state expired, a log entry still there shows the message as it was sent.
    await redis_client.delete(key)
    [shown, *_] = await inbox.read("b", None, 10)
    assert shown.event == message


@pytest.mark.gen_test
async def test_a_page_without_messages_costs_no_second_round_trip(redis_client, monkeypatch):
    from domain.events import GROUP_UPDATED, GroupChange

    inbox = RedisInbox(redis_client)
    renamed = GroupChange(type=GROUP_UPDATED, id=str(uuid.uuid4()), group_id=str(uuid.uuid4()), by_user_id="a",
                          created_at=1_700_000_000, name="team")
    await inbox.append(renamed, ["b"])
    gets: list = []

    async def mget(*args, **kwargs):
        gets.append(args)
        return []

    monkeypatch.setattr(redis_client, "mget", mget)
    assert [d.event for d in await inbox.read("b", None, 10)] == [renamed]
    assert gets == []


@pytest.mark.gen_test
async def test_a_group_whose_counter_is_switched_off_is_refused_large_with_nothing_written(redis_client, channel):
    """deliver.lua's LARGE (docs/design/large-groups.md, section 4.2): once the switch set
    seq:g:<G> to 'L', a send by the small path writes nothing - no seq, no idempotency
    answer, no entry, no persisted record, no notification - so it can go again by the
    large path and be delivered once. Every other conversation is untouched."""
    from adapters.redis.idempotency import RedisIdempotencyKeys, idempotency_key

    inbox = RedisInbox(redis_client, channel=channel)
    keys = RedisIdempotencyKeys(redis_client)
    before = (await inbox.deliver(group_message("small era"), ["a", "b"])).message
    large = replace(group_message("too late"), group_id=before.group_id, client_msg_id="c-1")
    await redis_client.set("seq:" + large.conversation, "L")
    assert await keys.remember("a", "c-1", large) is None  # the send's pending answer
    pending = await redis_client.get(idempotency_key("a", "c-1"))
    generator = await redis_client.get(CURSOR_GENERATOR)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    try:
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        for seeded in (False, True):  # with the seq:complete marker, and without (NOSEED's path)
            if seeded:
                await redis_client.set("seq:complete", "1")
            with pytest.raises(errors.GroupIsLarge):
                await inbox.deliver(large, ["a", "b"])
        assert await pubsub.get_message(timeout=0.2) is None
    finally:
        await pubsub.aclose()
    assert await redis_client.get("seq:" + large.conversation) == b"L"
    assert await redis_client.get(idempotency_key("a", "c-1")) == pending
    assert await redis_client.get(CURSOR_GENERATOR) == generator
    assert await redis_client.xlen("stream:persist") == 1
    for user in ("a", "b"):
        assert [d.event.id for d in await inbox.read(user, None, 10)] == [before.id]
    # A private message and another group go on as before.
    assert (await inbox.deliver(private("still here"), ["b"])).message.seq == 1
    assert (await inbox.deliver(group_message("other group"), ["a"])).message.seq == 1


@pytest.mark.gen_test
async def test_a_group_change_is_appended_whatever_the_groups_counter_holds(redis_client):
    """Only a message takes a seq: a change of a large group (an event without one) is not
    refused by the switched-off counter."""
    from domain.events import MEMBER_ADDED, GroupChange

    group_id = str(uuid.uuid4())
    await redis_client.set(f"seq:g:{group_id}", "L")
    change = GroupChange(MEMBER_ADDED, str(uuid.uuid4()), group_id, "a", 1_700_000_000, user_id="b")
    cursors = await RedisInbox(redis_client).append(change, ["b"])
    assert list(cursors) == ["b"]
