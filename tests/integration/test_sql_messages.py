"""SqlMessageStore against SQLite and MariaDB: idempotent saves that never drop a
row silently, history paging, content byte for byte."""
from __future__ import annotations

import logging
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import MessagesRejected, SqlMessageStore
from adapters.sql.tables import messages as messages_table
from adapters.sql.users import SqlUserRepository
from domain.model import GROUP, PRIVATE, Group, Message, User
from tests.fakes.repositories import MemoryMessageStore


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(db) -> SqlMessageStore:
    return SqlMessageStore(db)


@pytest.fixture
def people(db, io_loop) -> dict[str, str]:
    """Users anna, bob, carol and a group of all three."""
    ids = {name: new_id() for name in ("anna", "bob", "carol", "group")}

    async def setup():
        users = SqlUserRepository(db)
        for name in ("anna", "bob", "carol"):
            await users.add(User(id=ids[name], username=name, password_hash="h"))
        members = [ids["anna"], ids["bob"], ids["carol"]]
        await SqlGroupRepository(db).add(Group(id=ids["group"], name="g", owner_id=ids["anna"], member_ids=members))

    io_loop.run_sync(setup)
    return ids


def private(sender: str, to: str, content: str = "hi", **kw) -> Message:
    return Message(type=PRIVATE, id=new_id(), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


def group_message(sender: str, group_id: str, content: str = "hi", **kw) -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, group_id=group_id, content=content,
                   created_at=1_700_000_000, **kw)


def numbered(messages: list[Message], first: int = 1) -> list[Message]:
    """The messages as a store that numbered them (one conversation's, in order) gives them back."""
    return [replace(m, seq=first + i) for i, m in enumerate(messages)]


def count_rows(db) -> int:
    return db.call(False, lambda conn: conn.execute(select(func.count()).select_from(messages_table)).scalar())


@pytest.mark.gen_test
async def test_save_is_idempotent_by_id(db, store, people):
    a, b = people["anna"], people["bob"]
    batch = [private(a, b, f"m{i}") for i in range(5)]
    await store.save(batch)
    await store.save(batch)  # a persister retrying after a crash
    await store.save(batch[2:] + [private(b, a, "new")])  # overlapping batch
    await store.save([batch[0], batch[0], batch[1]])  # duplicates inside one batch
    await store.save([])
    assert count_rows(db) == 6
    page = await store.private_history(a, b, None, 50)
    assert [m.content for m in page.messages] == ["new", "m4", "m3", "m2", "m1", "m0"]
    assert page.messages[1] == replace(batch[4], seq=5)
    assert [m.seq for m in page.messages] == [6, 5, 4, 3, 2, 1]


@pytest.mark.gen_test
async def test_a_reused_client_msg_id_keeps_the_message(db, store, people, caplog):
    a, b = people["anna"], people["bob"]
    first = private(a, b, "first", client_msg_id="c-1")
    await store.save([first])
    second = private(a, b, "second", client_msg_id="c-1")
    third = private(a, b, "third", client_msg_id="c-2")
    fourth = private(a, b, "fourth", client_msg_id="c-2")  # same batch, same pair
    with caplog.at_level(logging.WARNING, logger="courier.sql"):
        await store.save([second, third, fourth])
    page = await store.private_history(a, b, None, 50)
    assert [(m.content, m.client_msg_id) for m in page.messages] == [
        ("fourth", None), ("third", "c-2"), ("second", None), ("first", "c-1"),
    ]
    assert "reuses client_msg_id" in caplog.text
    # The same client_msg_id from another sender is no collision.
    await store.save([private(b, a, "bob's", client_msg_id="c-1")])
    assert (await store.private_history(a, b, None, 1)).messages[0].client_msg_id == "c-1"


@pytest.mark.gen_test
async def test_client_msg_ids_that_differ_by_trailing_spaces_lose_no_message(db, store, people):
    """Two ids for Redis (two messages accepted), one for MySQL's PAD SPACE unique key:
    the second is stored all the same, without its client_msg_id there."""
    a, b = people["anna"], people["bob"]
    first = private(a, b, "first", client_msg_id="k")
    await store.save([first])
    second, third = private(a, b, "second", client_msg_id="k "), private(a, b, "third", client_msg_id="k  ")
    await store.save([second, third])
    page = await store.private_history(a, b, None, 50)
    assert [m.content for m in page.messages] == ["third", "second", "first"]
    assert [m.client_msg_id for m in page.messages][2] == "k"
    if db.is_sqlite:
        assert [m.client_msg_id for m in page.messages][:2] == ["k  ", "k "]


@pytest.mark.gen_test
async def test_an_unknown_user_is_refused_loudly_and_the_rest_is_stored(db, store, people):
    a, b = people["anna"], people["bob"]
    good = [private(a, b, "ok 1"), private(a, b, "ok 2")]
    bad = private(a, new_id(), "to nobody")
    bad_group = group_message(a, new_id(), "to no group")
    with pytest.raises(MessagesRejected) as refused:
        await store.save([good[0], bad, bad_group, good[1]])
    assert refused.value.details["message_ids"] == [bad.id, bad_group.id]
    assert count_rows(db) == 2
    assert [m.content for m in (await store.private_history(a, b, None, 50)).messages] == ["ok 2", "ok 1"]
    with pytest.raises(MessagesRejected):  # and again: nothing is silently dropped
        await store.save([bad])


@pytest.mark.gen_test
async def test_private_history_pages_through_both_directions(store, people):
    a, b, c = people["anna"], people["bob"], people["carol"]
    sent = []
    for i in range(7):
        sent.append(private(a, b, f"ab{i}") if i % 2 == 0 else private(b, a, f"ba{i}"))
        await store.save([sent[-1], private(a, c, f"other{i}"), group_message(a, people["group"], f"g{i}")])
    newest_first = list(reversed(numbered(sent)))
    seen, before = [], None
    while True:
        page = await store.private_history(b, a, before, 3)
        seen.extend(page.messages)
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == newest_first
    assert (await store.private_history(a, b, None, 50)).messages == newest_first
    assert (await store.private_history(a, b, None, 7)).next_before is None  # nothing older
    assert (await store.private_history(b, c, None, 50)).messages == []


@pytest.mark.gen_test
async def test_a_note_to_oneself(store, people):
    a, b = people["anna"], people["bob"]
    note = private(a, a, "note")
    await store.save([note, private(a, b, "not a note")])
    assert (await store.private_history(a, a, None, 50)).messages == [replace(note, seq=1)]


@pytest.mark.gen_test
async def test_group_history_pages_like_the_memory_store(store, people):
    a, b, g = people["anna"], people["bob"], people["group"]
    memory = MemoryMessageStore()
    batch = []
    for i in range(9):
        batch.append(group_message(a if i % 3 else b, g, f"g{i}"))
        batch.append(private(a, b, f"p{i}"))
    await store.save(batch)
    await memory.save(batch)
    for limit in (1, 2, 4, 9, 10, 50):
        sql_pages, memory_pages = [], []
        for pages, source in ((sql_pages, store), (memory_pages, memory)):
            before = None
            while True:
                page = await source.group_history(g, before, limit)
                pages.append([m.id for m in page.messages])
                if page.next_before is None:
                    break
                before = page.next_before
        assert sql_pages == memory_pages
    assert (await store.group_history(new_id(), None, 50)).messages == []


@pytest.mark.gen_test
async def test_before_values_at_the_edges(store, people):
    a, b = people["anna"], people["bob"]
    await store.save([private(a, b, "only")])
    assert [m.content for m in (await store.private_history(a, b, "99999999999999999999", 5)).messages] == ["only"]
    assert (await store.private_history(a, b, "0", 5)).messages == []
    assert (await store.private_history(a, b, "1", 5)).messages == []


CONTENTS = [
    "你好，世界",
    "emoji 😀👍🏽👨‍👩‍👧‍👦 and 𝄞",
    "'; DROP TABLE messages; --",
    'Robert"); DELETE FROM users WHERE ("1"="1',
    "100% \\ backslash %s %(x)s ? :name",
    "  spaces kept  \n\ttabs and newlines\r\n",
    "<script>alert('no escaping')</script> &amp;",
    "\x00 a NUL inside",
    "x" * 4000,
    "😀" * 4000,
    "長" * 20_000,  # a larger configured limit
]


@pytest.mark.gen_test
async def test_content_round_trips_byte_for_byte(store, people):
    a, b = people["anna"], people["bob"]
    sent = [private(a, b, content, client_msg_id=content[:128]) for content in CONTENTS]
    await store.save(sent)
    page = await store.private_history(a, b, None, 50)
    assert list(reversed(page.messages)) == numbered(sent)
    for message, content in zip(reversed(page.messages), CONTENTS, strict=True):
        assert message.content.encode("utf-8") == content.encode("utf-8")


# Message.seq: each conversation's order --------------------------------------------


@pytest.mark.gen_test
async def test_seqs_given_are_kept_and_history_is_in_their_order(db, store, people):
    """Production: deliver.lua numbers the messages, and persisters may store them in
    another order (a batch a dead persister left is stored late): history follows the seq."""
    a, b, g = people["anna"], people["bob"], people["group"]
    sent = numbered([private(a, b, f"m{i}") for i in range(5)])
    group = numbered([group_message(a, g, f"g{i}") for i in range(3)])
    await store.save([sent[3], sent[4], group[2]])
    await store.save([sent[0], group[0], sent[1], sent[2], group[1]])
    assert (await store.private_history(b, a, None, 50)).messages == sent[::-1]
    page = await store.private_history(a, b, None, 2)
    assert page.messages == [sent[4], sent[3]] and page.next_before == "4"
    assert (await store.private_history(a, b, "4", 50)).messages == sent[2::-1]
    assert (await store.group_history(g, None, 50)).messages == group[::-1]
    assert await store.last_seq(sent[0].conversation) == 5
    assert await store.last_seq(group[0].conversation) == 3
    assert await store.last_seq(private(b, people["carol"]).conversation) == 0
    # A message without a seq (queued by a gateway older than seqs) takes the next one.
    await store.save([late := private(b, a, "late")])
    assert (await store.private_history(a, b, None, 1)).messages == [replace(late, seq=6)]


@pytest.mark.gen_test
async def test_a_seq_another_message_holds_is_guarded_and_the_message_kept(db, store, people, caplog):
    """The unique key (conversation, seq): a second message with a seq already taken in its
    conversation is never stored beside the first with it; the persister stores it with
    the next free seq instead (Redis went back to an older state), and says so."""
    from sqlalchemy import exc, insert

    from adapters.sql.messages import message_row

    a, b = people["anna"], people["bob"]
    first = replace(private(a, b, "first"), seq=1)
    await store.save([first])
    with pytest.raises(exc.IntegrityError):
        db.call(True, lambda conn: conn.execute(insert(messages_table), [message_row(replace(first, id=new_id()))]))
    clash = replace(private(b, a, "clash"), seq=1)
    with caplog.at_level(logging.WARNING, logger="courier.sql"):
        await store.save([clash, first])  # the same message again is no clash
    assert "numbered anew" in caplog.text
    assert (await store.private_history(a, b, None, 50)).messages == [replace(clash, seq=2), first]
    # A group's seqs and a pair's are apart: seq 1 of a group is free.
    in_group = replace(group_message(a, people["group"]), seq=1)
    await store.save([in_group])
    assert (await store.group_history(people["group"], None, 5)).messages == [in_group]


@pytest.mark.gen_test
async def test_an_order_another_stream_gave_already_moves_only_the_key(db, store, people, caplog):
    """Orders are time ids unique within one persist stream only: stream:persist and a
    large group's lg:{G}:persist (or two groups') give the same <ms>-<n>. The second
    message is stored, at a free key past the highest, with the order's acceptance time."""
    a, b, g = people["anna"], people["bob"], people["group"]
    order = (1_700_000_000_000 << 20) | 0
    first = replace(private(a, b, "first"), seq=1)
    await store.save([first], [order])
    same_batch = [replace(group_message(a, g, f"g{i}"), seq=i + 1) for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="courier.sql"):
        await store.save(same_batch, [order, order])  # taken by `first`, and twice in the batch
        await store.save(same_batch, [order, order])  # handed out again: no new row
    assert "stored at" in caplog.text
    assert count_rows(db) == 3
    assert (await store.group_history(g, None, 5)).messages == same_batch[::-1]
    keys = db.call(False, lambda conn: conn.execute(select(messages_table.c.seq)).scalars().all())
    assert sorted(keys) == [order, order + 1, order + 2]
