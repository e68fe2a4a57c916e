"""Revision 0010 (read receipts) on a database at 0009 that holds data (issue 15, point
7): users, a group, a private chat, messages (one of them edited), the conversation
state and read markers as 0009 keeps them. After the upgrade every user from before
sends read receipts (users.send_read_receipts true), and the conversations, markers
and history are as they were; the next marker is a receipt. Embedded: a SQLite file;
production: a MariaDB database."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import column, create_engine, insert, pool, table, text

from adapters.sql import migrate
from adapters.sql.database import prepare_url
from entrypoints.settings import EMBEDDED
from tests.e2e.client import Account
from tests.e2e.test_lookalike_migration import fill_0001_users, password_of

GROUPS_0009 = table("groups", column("id"), column("name"), column("owner_id"), column("created_at"))
MEMBERS_0009 = table("group_members", column("group_id"), column("user_id"), column("position"),
                     column("joined_at"))
MESSAGES_0009 = table("messages", column("seq"), column("id"), column("type"), column("from_user_id"),
                      column("to_user_id"), column("group_id"), column("pair_key"), column("content"),
                      column("created_at"), column("client_msg_id"), column("conversation_seq"),
                      column("edited_at"), column("deleted_at"))
CONVERSATIONS_0009 = table("conversations", column("conversation"), column("last_seq"), column("last_message_id"),
                           column("activity"))
CONVERSATION_MEMBERS_0009 = table("conversation_members", column("user_id"), column("conversation"),
                                  column("peer_id"), column("group_id"), column("read_seq"), column("activity"))
NAMES = ["anna", "bert", "cleo"]
PRIVATE_ACTIVITY, GROUP_ACTIVITY = 1_750_000_000_000_000, 1_760_000_000_000_000  # microseconds: the group is newer


@dataclass
class Legacy:
    url: str
    ids: dict[str, str]
    group_id: str
    state: list[tuple]  # conversation_members before the upgrade


def members_state(url: str) -> list[tuple]:
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(
                "SELECT m.user_id, m.conversation, m.peer_id, m.group_id, m.read_seq, m.activity, c.last_seq,"
                " c.last_message_id, c.activity FROM conversation_members m"
                " JOIN conversations c ON c.conversation = m.conversation ORDER BY m.user_id, m.conversation"))]
    finally:
        engine.dispose()


def receipts_preferences(url: str) -> dict[str, bool]:
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return {name: bool(value) for name, value in conn.execute(
                text("SELECT username, send_read_receipts FROM users"))}
    finally:
        engine.dispose()


@pytest.fixture
def legacy(mode, tmp_path, request) -> Legacy:
    if mode == EMBEDDED:
        url = f"sqlite:///{tmp_path / 'legacy' / 'courier.db'}"
    else:
        url = request.getfixturevalue("make_mysql_database")()
    migrate.upgrade(url, "0001")
    ids = fill_0001_users(url, NAMES)
    migrate.upgrade(url, "0009")
    anna, bert, cleo = (ids[name] for name in NAMES)
    group_id = str(uuid.uuid4())
    pair_key = ":".join(sorted((anna, bert)))
    pair, group = "p:" + pair_key, "g:" + group_id
    # (sender, private recipient or None for the group, conversation seq, content, edited_at)
    plan = [(anna, bert, 1, "p1", None), (bert, anna, 2, "p2", None), (anna, bert, 3, "p3", 1_700_000_500),
            (anna, None, 1, "g1", None), (cleo, None, 2, "g2", None)]
    rows = [dict(seq=n, id=str(uuid.uuid4()), type="private" if to else "group", from_user_id=sender, to_user_id=to,
                 group_id=None if to else group_id, pair_key=pair_key if to else None, content=content,
                 created_at=1_700_000_000 + n, client_msg_id=None, conversation_seq=seq, edited_at=edited_at,
                 deleted_at=None)
            for n, (sender, to, seq, content, edited_at) in enumerate(plan, start=1)]
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(GROUPS_0009), [dict(id=group_id, name="old team", owner_id=anna,
                                                    created_at=datetime(2025, 1, 1))])
            conn.execute(insert(MEMBERS_0009), [dict(group_id=group_id, user_id=user, position=i,
                                                     joined_at=datetime(2025, 1, 1))
                                                for i, user in enumerate((anna, bert, cleo), start=1)])
            conn.execute(insert(MESSAGES_0009), rows)
            conn.execute(insert(CONVERSATIONS_0009), [
                dict(conversation=pair, last_seq=3, last_message_id=rows[2]["id"], activity=PRIVATE_ACTIVITY),
                dict(conversation=group, last_seq=2, last_message_id=rows[4]["id"], activity=GROUP_ACTIVITY)])
            # Markers as 0009 kept them: own sends moved them; bert read p1 only, cleo the group.
            conn.execute(insert(CONVERSATION_MEMBERS_0009), [
                dict(user_id=anna, conversation=pair, peer_id=bert, group_id=None, read_seq=3,
                     activity=PRIVATE_ACTIVITY),
                dict(user_id=bert, conversation=pair, peer_id=anna, group_id=None, read_seq=1,
                     activity=PRIVATE_ACTIVITY),
                *(dict(user_id=user, conversation=group, peer_id=None, group_id=group_id, read_seq=read_seq,
                       activity=GROUP_ACTIVITY) for user, read_seq in ((anna, 1), (bert, 0), (cleo, 2)))])
    finally:
        engine.dispose()
    state = members_state(url)
    migrate.upgrade(url)  # 0010
    return Legacy(url, ids, group_id, state)


@pytest.fixture
def settings_overrides(legacy) -> dict:
    return {"database_url": legacy.url}


async def login(api, name: str) -> Account:
    r = await api.login(name, password_of(name))
    assert r.status == 200, r
    return Account(r.body["user_id"], name, password_of(name), r.body["token"])


async def listing(api, account) -> list[tuple]:
    r = await api.call("GET", "/api/v1/conversations", token=account.token)
    assert r.status == 200, r
    return [(c.get("username", c.get("name")), (c["last_message"] or {}).get("content"), c["last_seq"], c["read_seq"],
             c["unread_count"]) for c in r.body["conversations"]]


async def reads(api, account, group_id: str) -> dict:
    r = await api.call("GET", f"/api/v1/groups/{group_id}/reads", token=account.token)
    assert r.status == 200, r
    return {entry["user_id"]: entry["read_seq"] for entry in r.body["reads"]}


@pytest.mark.gen_test(timeout=60)
async def test_users_from_before_send_receipts_and_keep_their_conversations_and_markers(api, legacy):
    assert receipts_preferences(legacy.url) == dict.fromkeys(NAMES, True)
    assert members_state(legacy.url) == legacy.state  # 0010 touched no conversation row
    anna, bert, cleo = [await login(api, name) for name in NAMES]
    assert await listing(api, anna) == [("old team", "g2", 2, 1, 1), ("bert", "p3", 3, 3, 0)]
    assert await listing(api, bert) == [("old team", "g2", 2, 0, 2), ("anna", "p3", 3, 1, 2)]
    assert await listing(api, cleo) == [("old team", "g2", 2, 2, 0)]
    # Every marker is shown to the others: nobody from before has receipts off.
    assert await reads(api, bert, legacy.group_id) == {anna.user_id: 1, bert.user_id: 0, cleo.user_id: 2}
    pair = await api.history_all(bert, f"/conversations/{anna.user_id}")
    assert [(m["content"], m["seq"], bool(m.get("edited_at"))) for m in pair] == [
        ("p3", 3, True), ("p2", 2, False), ("p1", 1, False)]


@pytest.mark.gen_test(timeout=60)
async def test_the_first_marker_after_the_upgrade_is_a_receipt_and_the_preference_works(api, legacy, courier):
    anna, bert, cleo = [await login(api, name) for name in NAMES]
    sender, member = await api.connect(anna, events=True), await api.connect(cleo, events=True)
    r = await api.call("POST", f"/api/v1/conversations/{anna.user_id}/read", {"seq": 3}, bert.token)
    assert r.status == 200 and r.body == {"read_seq": 3, "unread_count": 0}, r
    receipt = await sender.next()
    assert (receipt["type"], receipt["user_id"], receipt["seq"]) == ("read", bert.user_id, 3), receipt
    assert receipt["conversation"] == {"type": "private", "user_id": anna.user_id}
    r = await api.call("PATCH", "/api/v1/users/me", {"send_read_receipts": False}, bert.token)
    assert r.status == 200 and r.body["send_read_receipts"] is False, r
    r = await api.call("POST", f"/api/v1/groups/{legacy.group_id}/read", {"seq": 2}, bert.token)
    assert r.status == 200 and r.body == {"read_seq": 2, "unread_count": 0}, r
    assert await sender.nothing() and await member.nothing()
    assert await reads(api, cleo, legacy.group_id) == {anna.user_id: 1, bert.user_id: None, cleo.user_id: 2}
    assert receipts_preferences(legacy.url) == {"anna": True, "bert": False, "cleo": True}
