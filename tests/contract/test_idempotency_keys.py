"""The IdempotencyKeys port (application/ports.py), over every adapter: memory (the
tests' fake), SQL (SQLite and MariaDB) and Redis: pending then delivered answers,
compare-and-set confirm() and forget(), pending answers that expire."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from application.ports import Answer
from domain.model import PRIVATE, Message
from tests.contract.adapters import make_store


def keyed(sender: str, client_msg_id: str, content: str = "hello") -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=sender, content=content,
                   created_at=1_700_000_000, client_msg_id=client_msg_id)


@pytest.mark.gen_test(timeout=30)
async def test_remember_then_the_pending_then_the_delivered_answer(kind, request, sql_database):
    keys = (store := await make_store(kind, request, sql_database)).keys
    a, b = store.people[:2]
    first, retry = keyed(a, "k-1"), keyed(a, "k-1")
    assert await keys.remember(a, "k-1", first) is None
    assert await keys.remember(a, "k-1", retry) == Answer(first, delivered=False)
    await keys.confirm(a, "k-1", first)
    assert await keys.remember(a, "k-1", retry) == Answer(first, delivered=True)
    await keys.confirm(a, "k-1", first)  # idempotent
    assert await keys.remember(a, "k-1", retry) == Answer(first, delivered=True)
    # Keys are per sender.
    assert await keys.remember(b, "k-1", keyed(b, "k-1")) is None


@pytest.mark.gen_test(timeout=30)
async def test_forget_drops_only_its_own_pending_answer(kind, request, sql_database):
    keys = (store := await make_store(kind, request, sql_database)).keys
    a = store.people[0]
    first, other = keyed(a, "k"), keyed(a, "k")
    assert await keys.remember(a, "k", first) is None
    await keys.forget(a, "k", other)  # not its answer: left alone
    assert await keys.remember(a, "k", other) == Answer(first, delivered=False)
    await keys.forget(a, "k", first)
    assert await keys.remember(a, "k", other) is None  # free again: taken by the retry
    await keys.confirm(a, "k", other)
    await keys.forget(a, "k", other)  # a delivered answer is never forgotten
    assert await keys.remember(a, "k", keyed(a, "k")) == Answer(other, delivered=True)


@pytest.mark.gen_test(timeout=30)
async def test_confirm_never_overwrites_another_messages_answer_and_fills_a_free_key(kind, request, sql_database):
    keys = (store := await make_store(kind, request, sql_database)).keys
    a = store.people[0]
    holder, slow = keyed(a, "k"), keyed(a, "k")
    assert await keys.remember(a, "k", holder) is None
    await keys.confirm(a, "k", slow)
    assert await keys.remember(a, "k", slow) == Answer(holder, delivered=False)
    await keys.confirm(a, "free", slow)
    assert await keys.remember(a, "free", keyed(a, "free")) == Answer(slow, delivered=True)


@pytest.mark.gen_test(timeout=30)
async def test_odd_client_msg_ids_are_kept_apart(kind, request, sql_database):
    keys = (store := await make_store(kind, request, sql_database)).keys
    a = store.people[0]
    odd = ["a:b", "a b", "🎉" * 30, "x" * 128, "k", "K"]
    messages = {key: keyed(a, key, f"for {key}") for key in odd}
    for key, message in messages.items():
        assert await keys.remember(a, key, message) is None
    for key, message in messages.items():
        assert await keys.remember(a, key, keyed(a, key)) == Answer(message, delivered=False)


@pytest.mark.gen_test(timeout=30)
async def test_a_pending_answer_expires_and_a_delivered_one_is_kept(kind, request, sql_database):
    keys = (store := await make_store(kind, request, sql_database, pending_ttl=0.2)).keys
    a = store.people[0]
    dead, delivered = keyed(a, "dead"), keyed(a, "kept")
    assert await keys.remember(a, "dead", dead) is None
    assert await keys.remember(a, "kept", delivered) is None
    await keys.confirm(a, "kept", delivered)
    await asyncio.sleep(1.3)  # the SQL store keeps whole seconds
    retry = keyed(a, "dead")
    assert await keys.remember(a, "dead", retry) is None  # the retry takes the key
    await keys.confirm(a, "dead", dead)  # the dead send's late confirm leaves the retry's alone
    await keys.forget(a, "dead", dead)  # and so does a late forget
    await keys.confirm(a, "dead", retry)
    assert await keys.remember(a, "dead", keyed(a, "dead")) == Answer(retry, delivered=True)
    assert await keys.remember(a, "kept", keyed(a, "kept")) == Answer(delivered, delivered=True)
