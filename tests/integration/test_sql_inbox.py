"""SqliteInbox (the embedded mode's inbox streams) and SqlIdempotencyKeys, against
SQLite and, since nothing in them is SQLite-only, MariaDB too."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from adapters.memory.bus import InProcessBus
from adapters.sql.database import Database
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.idempotency import SqlIdempotencyKeys
from adapters.sql.inbox import SqliteInbox
from adapters.sql.messages import SqlMessageStore
from adapters.sql.users import SqlUserRepository
from application.ports import Answer, Notification
from domain import errors
from domain.model import PRIVATE, Group, Message, User, cursor_position

REPO = Path(__file__).resolve().parents[2]


def new_id() -> str:
    return str(uuid.uuid4())


def message(sender: str, to: str, content: str = "hi", **kw) -> Message:
    return Message(type=PRIVATE, id=new_id(), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


@pytest.fixture
def bus() -> InProcessBus:
    bus = InProcessBus()
    bus.keep_published = True
    return bus


@pytest.fixture
def people(db, io_loop) -> list[str]:
    ids = [new_id() for _ in range(4)]

    async def setup():
        users = SqlUserRepository(db)
        for i, user_id in enumerate(ids):
            await users.add(User(id=user_id, username=f"user{i}", password_hash="h"))

    io_loop.run_sync(setup)
    return ids


@pytest.fixture
def inbox(db, bus) -> SqliteInbox:
    return SqliteInbox(db, bus)


@pytest.mark.gen_test
async def test_deliver_then_read_oldest_first(inbox, people):
    a, b, c, _ = people
    cursors = [await inbox.deliver(message(a, b, f"m{i}"), [b]) for i in range(5)]
    assert all(set(c) == {b} for c in cursors)
    sent = [accepted.message for accepted in cursors]
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5]
    deliveries = await inbox.read(b, None, 50)
    assert [d.event for d in deliveries] == sent
    assert [d.cursor for d in deliveries] == [c[b] for c in cursors]
    assert [cursor_position(d.cursor) for d in deliveries] == sorted(cursor_position(d.cursor) for d in deliveries)
    assert [d.event for d in await inbox.read(b, cursors[1][b], 2)] == sent[2:4]
    assert await inbox.read(b, cursors[-1][b], 50) == []
    assert await inbox.read(c, None, 50) == []
    assert await inbox.last_cursor(b) == cursors[-1][b]
    assert await inbox.last_cursor(c) is None


@pytest.mark.gen_test
async def test_a_group_message_lands_in_every_recipients_inbox_and_in_the_store(db, inbox, people):
    a, b, c, d = people
    group = Group(id=new_id(), name="g", owner_id=a, member_ids=[a, b, c, d])
    await SqlGroupRepository(db).add(group)
    sent = Message(type="group", id=new_id(), from_user_id=a, group_id=group.id, content="to all", created_at=1)
    cursors = await inbox.deliver(sent, [b, c, d])
    assert set(cursors) == {b, c, d}
    sent = cursors.message
    assert sent.seq == 1
    for user_id in (b, c, d):
        [delivery] = await inbox.read(user_id, None, 10)
        assert (delivery.event, delivery.cursor) == (sent, cursors[user_id])
    # Embedded mode: the message is in the durable store at once, and saving it again is a no-op.
    store = SqlMessageStore(db)
    await store.save([sent])
    assert len(await inbox.read(b, None, 10)) == 1
    assert (await store.group_history(group.id, None, 10)).messages == [sent]


@pytest.mark.gen_test
async def test_the_notification_follows_the_commit(db, bus, inbox, people):
    a, b, *_ = people
    seen_committed = []

    def on_notification(notification: Notification) -> None:
        # Another connection must already see the entry: the notification comes after the commit.
        seen_committed.append(db.call(False, SqliteInbox._last_cursor, b) == notification.cursors[b])

    bus._subscribers.append(on_notification)
    cursors = await inbox.deliver(message(a, b), [b])
    assert bus.published == [Notification(cursors.message, cursors)]
    assert seen_committed == [True]


@pytest.mark.gen_test
async def test_concurrent_sends_are_published_in_cursor_order(bus, inbox, people):
    a, b, c, d = people
    sends = [inbox.deliver(message(a if i % 2 else d, b, f"m{i}"), [b, c] if i % 3 else [c]) for i in range(60)]
    results = await asyncio.gather(*sends)
    assert len(bus.published) == 60
    for user_id in (b, c):
        published = [cursor_position(n.cursors[user_id]) for n in bus.published if user_id in n.cursors]
        assert published == sorted(published) and len(set(published)) == len(published)
        read = [cursor_position(d.cursor) for d in await inbox.read(user_id, None, 200)]
        assert read == published
    assert [n.cursors for n in bus.published] == results  # published in the order the sends came


@pytest.mark.gen_test
async def test_a_bad_send_does_not_fail_the_ones_batched_with_it(bus, inbox, people):
    a, b, *_ = people
    good = [message(a, b, f"ok{i}") for i in range(5)]
    bad = message(a, new_id(), "to nobody")
    results = await asyncio.gather(*(inbox.deliver(m, [m.to_user_id]) for m in [*good[:2], bad, *good[2:]]),
                                   return_exceptions=True)
    assert isinstance(results[2], errors.NotFound)
    good = [accepted.message for accepted in results[:2] + results[3:]]
    assert [m.seq for m in good] == [1, 2, 3, 4, 5]  # the refused one took no seq
    assert [d.event for d in await inbox.read(b, None, 50)] == good
    assert [n.event for n in bus.published] == good


@pytest.mark.gen_test
async def test_trimming_now_and_then_keeps_the_inbox_near_its_limit(db, people):
    a, b, *_ = people
    inbox = SqliteInbox(db, InProcessBus(), max_length=5, trim_every=4)
    for i in range(30):
        await inbox.deliver(message(a, b, f"m{i}"), [b])
        assert len(await inbox.read(b, None, 100)) <= 5 + 4 - 1
    first_kept = (await inbox.read(b, None, 1))[0].cursor
    major = cursor_position(first_kept)[0]
    with pytest.raises(errors.CursorExpired):
        await inbox.read(b, f"{major - 2}-0", 10)


@pytest.mark.gen_test
async def test_cursor_edge_cases(inbox, people):
    a, b, c, *_ = people
    cursors = await inbox.deliver(message(a, b), [b])
    major, _ = cursor_position(cursors[b])
    assert len(await inbox.read(b, "0-0", 10)) == 1
    assert len(await inbox.read(b, f"{major - 1}-99", 10)) == 1
    assert await inbox.read(b, cursors[b], 10) == []  # the newest entry: nothing after it yet
    # After the newest entry: no cursor handed out is there (Inbox.read says why).
    for made_up in (f"{major}-1", f"{major + 1}-0", "99999999999999999999-0"):
        with pytest.raises(errors.CursorUnknown):
            await inbox.read(b, made_up, 10)
    assert await inbox.read(c, "0-0", 10) == []  # an empty inbox knows only the start
    with pytest.raises(errors.CursorUnknown):
        await inbox.read(c, cursors[b], 10)  # another user's cursor, after everything c has
    with pytest.raises(errors.InvalidCursor):
        await inbox.read(b, "garbage", 10)


@pytest.mark.gen_test
async def test_the_inbox_survives_reopening_the_file(sqlite_url, io_loop):
    from adapters.sql import migrate

    migrate.upgrade(sqlite_url)
    a, b = new_id(), new_id()
    first = Database(sqlite_url)
    for i, user_id in enumerate((a, b)):
        await SqlUserRepository(first).add(User(id=user_id, username=f"u{i}", password_hash="h"))
    cursors = await SqliteInbox(first, InProcessBus()).deliver(message(a, b, "kept 😀"), [b])
    sent = cursors.message
    first.close()
    again = Database(sqlite_url)
    try:
        inbox = SqliteInbox(again, InProcessBus())
        assert [(d.event, d.cursor) for d in await inbox.read(b, None, 10)] == [(sent, cursors[b])]
        later = await inbox.deliver(message(b, a, "after restart"), [b])
        assert cursor_position(later[b]) > cursor_position(cursors[b])  # cursors keep growing
        assert (sent.seq, later.message.seq) == (1, 2)  # and so do the conversation's seqs
    finally:
        again.close()


KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time, uuid
    from adapters.memory.bus import InProcessBus
    from adapters.sql.database import Database
    from adapters.sql.inbox import SqliteInbox
    from adapters.sql.users import SqlUserRepository
    from domain.model import Message, User

    async def main(url):
        db = Database(url)
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        users = SqlUserRepository(db)
        await users.add(User(a, "sender", "h"))
        await users.add(User(b, "receiver", "h"))
        message = Message("private", str(uuid.uuid4()), a, "accepted", 1, to_user_id=b)
        cursors = await SqliteInbox(db, InProcessBus()).deliver(message, [b])
        print(b, message.id, cursors[b], flush=True)  # "201": the test kills us now
        time.sleep(60)

    asyncio.run(main(sys.argv[1]))
    """
)


def test_an_accepted_message_survives_kill_9(sqlite_url):
    from adapters.sql import migrate

    migrate.upgrade(sqlite_url)
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, sqlite_url], cwd=REPO, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = child.stdout.readline()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
    user_id, message_id, cursor = line.split()
    db = Database(sqlite_url)
    try:
        [delivery] = db.call(False, SqliteInbox._read, user_id, None, 10)
        assert (delivery.event.id, delivery.cursor, delivery.event.content) == (message_id, cursor, "accepted")
    finally:
        db.close()


# SqlIdempotencyKeys ---------------------------------------------------


@pytest.mark.gen_test
async def test_a_retry_gets_the_original_message_back(db, people):
    a, b, c, _ = people
    keys = SqlIdempotencyKeys(db)
    original = message(a, b, "first 😀", client_msg_id="k1")
    assert await keys.remember(a, "k1", original) is None
    retry = message(a, b, "first 😀", client_msg_id="k1")
    # same id, created_at, content; pending until the first send confirms it
    assert await keys.remember(a, "k1", retry) == Answer(original, delivered=False)
    await keys.confirm(a, "k1", original)
    assert await keys.remember(a, "k1", retry) == Answer(original, delivered=True)
    # Another sender's k1 is another key.
    assert await keys.remember(c, "k1", message(c, b, client_msg_id="k1")) is None
    # A send that failed is forgotten, so the retry goes through as a new message.
    failed = message(a, b, client_msg_id="k2")
    await keys.remember(a, "k2", failed)
    await keys.forget(a, "k2", failed)
    assert await keys.remember(a, "k2", retry) is None
    assert await keys.remember(a, "k2", original) == Answer(retry, delivered=False)
    await keys.forget(a, "never-remembered", retry)


@pytest.mark.gen_test
async def test_forget_and_confirm_touch_only_their_own_message(db, people):
    a, b, *_ = people
    keys = SqlIdempotencyKeys(db)
    first, other = message(a, b, client_msg_id="k"), message(a, b, client_msg_id="k")
    await keys.remember(a, "k", first)
    await keys.forget(a, "k", other)
    await keys.confirm(a, "k", other)
    assert await keys.remember(a, "k", other) == Answer(first, delivered=False)
    await keys.confirm(a, "k", first)
    await keys.confirm(a, "k", first)  # idempotent
    await keys.forget(a, "k", first)  # a delivered answer stays
    assert await keys.remember(a, "k", other) == Answer(first, delivered=True)
    # confirm() on a free key remembers the message, delivered.
    free = message(a, b, client_msg_id="free")
    await keys.confirm(a, "free", free)
    assert await keys.remember(a, "free", other) == Answer(free, delivered=True)


@pytest.mark.gen_test
async def test_a_pending_answer_left_by_a_dead_send_is_taken_over_after_its_ttl(db, people):
    a, b, *_ = people
    now = [1_700_000_000.0]
    keys = SqlIdempotencyKeys(db, now=lambda: now[0], pending_ttl=30)
    dead, retry = message(a, b, client_msg_id="k"), message(a, b, client_msg_id="k")
    await keys.remember(a, "k", dead)  # never confirmed nor forgotten
    now[0] += 29
    assert await keys.remember(a, "k", retry) == Answer(dead, delivered=False)
    now[0] += 1
    assert await keys.remember(a, "k", retry) is None  # the retry took the key
    assert await keys.remember(a, "k", dead) == Answer(retry, delivered=False)
    # Should the dead send come back after all, it cannot touch the retry's answer.
    await keys.forget(a, "k", dead)
    await keys.confirm(a, "k", dead)
    assert await keys.remember(a, "k", dead) == Answer(retry, delivered=False)
    await keys.confirm(a, "k", retry)
    now[0] += 3600  # a delivered answer never goes stale
    assert await keys.remember(a, "k", dead) == Answer(retry, delivered=True)


@pytest.mark.gen_test
async def test_the_inbox_marks_the_answer_delivered_in_the_append_transaction(db, people, inbox):
    a, b, *_ = people
    keys = SqlIdempotencyKeys(db)
    sent = message(a, b, client_msg_id="k")
    await keys.remember(a, "k", sent)
    sent = (await inbox.deliver(sent, [b])).message  # as accepted: with its seq, which a retry gets too
    # The process died before its confirm(): the answer is delivered all the same, and a
    # delivery that failed only in its reply keeps its answer when the key is forgotten.
    await keys.forget(a, "k", sent)
    assert await keys.remember(a, "k", message(a, b, client_msg_id="k")) == Answer(sent, delivered=True)


@pytest.mark.gen_test
async def test_a_late_first_attempt_whose_key_a_retry_took_appends_nothing(db, people, inbox):
    """The first attempt's pending answer went stale while it was slow and the retry took
    the key over: the retry delivers the message; the late attempt must not send a second
    copy, and it leaves the others of its batch alone."""
    a, b, c, _ = people
    now = [1_700_000_000.0]
    keys = SqlIdempotencyKeys(db, now=lambda: now[0], pending_ttl=30)
    late, retry = message(a, b, "late", client_msg_id="k"), message(a, b, "retry", client_msg_id="k")
    await keys.remember(a, "k", late)
    now[0] += 31
    assert await keys.remember(a, "k", retry) is None
    # Queued in the same batch: a message without a key, and another sender's own "k".
    bystander, same_key_other_sender = message(a, b, "queued beside it"), message(c, b, client_msg_id="k")
    results = await asyncio.gather(
        inbox.deliver(late, [b]), inbox.deliver(bystander, [b]), inbox.deliver(same_key_other_sender, [b]),
        return_exceptions=True,
    )
    assert isinstance(results[0], errors.SendSuperseded) and b in results[1] and b in results[2]
    bystanders = [bystander.id, same_key_other_sender.id]
    assert [d.event.id for d in await inbox.read(b, None, 10)] == bystanders
    assert await keys.remember(a, "k", message(a, b)) == Answer(retry, delivered=False)  # left alone
    retry = (await inbox.deliver(retry, [b])).message
    with pytest.raises(errors.SendSuperseded):
        await inbox.deliver(late, [b])
    assert [d.event.id for d in await inbox.read(b, None, 10)] == [*bystanders, retry.id]
    assert await keys.remember(a, "k", message(a, b)) == Answer(retry, delivered=True)


@pytest.mark.gen_test
async def test_a_group_message_is_remembered_whole(db, people):
    a, *_ = people
    keys = SqlIdempotencyKeys(db)
    original = Message(type="group", id=new_id(), from_user_id=a, group_id=new_id(), content="x" * 5000,
                       created_at=1_700_000_123, client_msg_id="長い-id")
    await keys.remember(a, "長い-id", original)
    assert (await keys.remember(a, "長い-id", message(a, a))).message == original


@pytest.mark.gen_test
async def test_keys_are_kept_at_least_a_day_then_purged(db, people):
    a, b, *_ = people
    now = [1_700_000_000.0]
    keys = SqlIdempotencyKeys(db, now=lambda: now[0])
    first = message(a, b, client_msg_id="old")
    await keys.remember(a, "old", first)
    await keys.confirm(a, "old", first)
    now[0] += 24 * 3600
    assert await keys.remember(a, "old", message(a, b)) == Answer(first, delivered=True)
    now[0] += 30 * 24 * 3600
    keys._until_purge = 0  # the next call purges
    assert await keys.remember(a, "new", message(a, b)) is None
    assert await keys.remember(a, "old", message(a, b)) is None  # purged: a new send


@pytest.mark.gen_test
async def test_a_batch_gets_the_cursors_of_its_rows_fast_path_or_one_by_one(db, inbox, people, monkeypatch):
    """SQLite inserts a commit's rows with one executemany and works their seqs out
    (adapters/sql/inbox._sqlite_insert_consecutive); when that check fails, the rows are
    inserted again one by one. Both ways every recipient's cursor is its own entry."""
    import adapters.sql.inbox as inbox_module

    a, b, c, d = people

    async def send_concurrently(count: int) -> list[tuple[Message, dict]]:
        sent = [message(a, [b, c, d][i % 3], f"m{i}") for i in range(count)]
        cursors = await asyncio.gather(*(inbox.deliver(m, [m.to_user_id, a]) for m in sent))
        return list(zip(sent, cursors, strict=True))

    async def check(pairs) -> None:
        for user_id in (a, b, c, d):
            got = {delivery.event.id: delivery.cursor for delivery in await inbox.read(user_id, None, 200)}
            for sent, cursors in pairs:
                if user_id in cursors:
                    assert got[sent.id] == cursors[user_id]

    fast = await send_concurrently(30)
    await check(fast)
    real = inbox_module._sqlite_insert_consecutive

    def never_consecutive(conn, table, rows):
        real_last = conn.exec_driver_sql  # a gap: pretend the last rowid was one further

        class Shifted:
            def __init__(self, result):
                self._result = result

            def scalar(self):
                return self._result.scalar() + 1

        def exec_driver_sql(sql, *args):
            result = real_last(sql, *args)
            return Shifted(result) if "last_insert_rowid" in sql else result

        monkeypatch.setattr(conn, "exec_driver_sql", exec_driver_sql)
        try:
            return real(conn, table, rows)
        finally:
            monkeypatch.setattr(conn, "exec_driver_sql", real_last)

    monkeypatch.setattr(inbox_module, "_sqlite_insert_consecutive", never_consecutive)
    slow = await send_concurrently(30)
    await check(fast + slow)
    assert len(await inbox.read(a, None, 200)) == 60  # nothing inserted twice by the undone attempt
