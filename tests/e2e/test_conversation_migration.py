"""Revisions 0008 (conversation state) and 0009 (message edits) on a database at 0007
that holds data (issue 15, point 7): groups with and without messages, private chats,
an inbox. After the upgrade the conversation list holds every chat with its last
message and nothing stored before counts as unread; the history reads as before; new
messages, read markers, edits and deletes of old messages work. Embedded: a SQLite
file; production: a MariaDB database."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import column, create_engine, insert, pool, table

from adapters.sql import migrate
from adapters.sql.database import prepare_url
from entrypoints.settings import EMBEDDED
from tests.e2e.client import Account
from tests.e2e.test_lookalike_migration import fill_0001_users, password_of

GROUPS_0007 = table("groups", column("id"), column("name"), column("owner_id"), column("created_at"))
MEMBERS_0007 = table("group_members", column("group_id"), column("user_id"), column("position"),
                     column("joined_at"))
MESSAGES_0007 = table("messages", column("seq"), column("id"), column("type"), column("from_user_id"),
                      column("to_user_id"), column("group_id"), column("pair_key"), column("content"),
                      column("created_at"), column("client_msg_id"), column("conversation_seq"))
INBOX_0007 = table("inbox_entries", column("seq"), column("user_id"), column("message_seq"), column("event"))
CONVERSATIONS = "/api/v1/conversations"


@dataclass
class Legacy:
    url: str
    ids: dict[str, str]
    group_id: str
    empty_group_id: str
    messages: list[dict]


@pytest.fixture
def legacy(mode, tmp_path, request) -> Legacy:
    if mode == EMBEDDED:
        url = f"sqlite:///{tmp_path / 'legacy' / 'courier.db'}"
    else:
        url = request.getfixturevalue("make_mysql_database")()
    migrate.upgrade(url, "0001")
    ids = fill_0001_users(url, ["anna", "bert", "cleo", "dora"])
    migrate.upgrade(url, "0007")
    anna, bert, cleo, dora = (ids[n] for n in ("anna", "bert", "cleo", "dora"))
    group_id, empty_group_id = str(uuid.uuid4()), str(uuid.uuid4())
    plan = [(anna, bert, None), (None, None, anna), (bert, anna, None), (anna, cleo, None), (None, None, bert),
            (anna, bert, None), (None, None, cleo), (bert, anna, None)]
    rows, seqs = [], {}
    for seq, (sender, to, group_sender) in enumerate(plan, start=1):
        private = group_sender is None
        key = ":".join(sorted((sender, to))) if private else group_id
        seqs[key] = seqs.get(key, 0) + 1
        rows.append(dict(
            seq=seq, id=str(uuid.uuid4()), type="private" if private else "group",
            from_user_id=sender if private else group_sender, to_user_id=to if private else None,
            group_id=None if private else group_id, pair_key=key if private else None,
            content=f"old {seq}", created_at=1_700_000_000 + seq, client_msg_id=None, conversation_seq=seqs[key]))
    rows[5]["created_at"] = int(time.time()) - 60  # "old 6": still within the edit window
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(GROUPS_0007), [
                dict(id=group_id, name="old team", owner_id=anna, created_at=datetime(2023, 1, 1)),
                # created after every message: the top of its members' lists
                dict(id=empty_group_id, name="quiet", owner_id=dora, created_at=datetime(2026, 1, 1)),
            ])
            conn.execute(insert(MEMBERS_0007), [
                dict(group_id=group_id, user_id=user, position=i, joined_at=datetime(2023, 1, 1))
                for i, user in enumerate((anna, bert, cleo))] + [
                dict(group_id=empty_group_id, user_id=user, position=i, joined_at=datetime(2026, 1, 1))
                for i, user in enumerate((dora, anna))])
            conn.execute(insert(MESSAGES_0007), rows)
            to_bert = [r for r in rows if r["to_user_id"] == bert or (r["group_id"] and r["from_user_id"] != bert)]
            conn.execute(insert(INBOX_0007), [dict(seq=i, user_id=bert, message_seq=r["seq"], event=None)
                                              for i, r in enumerate(to_bert, start=1)])
    finally:
        engine.dispose()
    migrate.upgrade(url)  # 0008, 0009
    return Legacy(url, ids, group_id, empty_group_id, rows)


@pytest.fixture
def settings_overrides(legacy) -> dict:
    return {"database_url": legacy.url}


async def login(api, name):
    r = await api.login(name, password_of(name))
    assert r.status == 200, r
    return Account(r.body["user_id"], name, password_of(name), r.body["token"])


async def listing(api, account) -> list[tuple]:
    r = await api.call("GET", CONVERSATIONS, token=account.token)
    assert r.status == 200, r
    return [(c.get("username", c.get("name")), (c["last_message"] or {}).get("content"), c["last_seq"], c["read_seq"],
             c["unread_count"]) for c in r.body["conversations"]]


@pytest.mark.gen_test(timeout=60)
async def test_the_list_after_the_upgrade_holds_every_chat_with_nothing_unread(api, legacy):
    anna, bert, cleo, dora = [await login(api, n) for n in ("anna", "bert", "cleo", "dora")]
    assert await listing(api, anna) == [
        ("quiet", None, 0, 0, 0), ("bert", "old 8", 4, 4, 0), ("old team", "old 7", 3, 3, 0),
        ("cleo", "old 4", 1, 1, 0)]
    assert await listing(api, bert) == [("anna", "old 8", 4, 4, 0), ("old team", "old 7", 3, 3, 0)]
    assert await listing(api, cleo) == [("old team", "old 7", 3, 3, 0), ("anna", "old 4", 1, 1, 0)]
    assert await listing(api, dora) == [("quiet", None, 0, 0, 0)]
    pair = await api.history_all(bert, f"/conversations/{anna.user_id}")
    assert [(m["content"], m["seq"]) for m in pair] == [("old 8", 4), ("old 6", 3), ("old 3", 2), ("old 1", 1)]
    assert not any("edited_at" in m or m.get("deleted") for m in pair)
    group = await api.history_all(anna, f"/groups/{legacy.group_id}")
    assert [(m["content"], m["seq"]) for m in group] == [("old 7", 3), ("old 5", 2), ("old 2", 1)]


@pytest.mark.gen_test(timeout=60)
async def test_new_messages_markers_edits_and_deletes_go_on_from_the_upgraded_state(api, legacy, courier):
    anna, bert, cleo = [await login(api, n) for n in ("anna", "bert", "cleo")]
    assert (await api.send(bert, anna, "new")).body["seq"] == 5
    assert (await api.send_group(cleo, legacy.group_id, "new in group")).body["seq"] == 4
    await courier.settle()
    assert (await listing(api, anna))[:2] == [("old team", "new in group", 4, 3, 1), ("bert", "new", 5, 4, 1)]
    r = await api.call("POST", f"{CONVERSATIONS}/{bert.user_id}/read", {"seq": 5}, anna.token)
    assert r.status == 200 and r.body == {"read_seq": 5, "unread_count": 0}, r
    r = await api.call("POST", f"/api/v1/groups/{legacy.group_id}/read", {"seq": 3}, anna.token)  # not forward
    assert r.status == 200 and r.body == {"read_seq": 3, "unread_count": 1}, r
    assert (await listing(api, anna))[:2] == [("old team", "new in group", 4, 3, 1), ("bert", "new", 5, 5, 0)]
    # An old message edited and another deleted (0009's columns on rows from before).
    old = {m["content"]: m for m in legacy.messages}
    r = await api.call("PATCH", f"/api/v1/messages/{old['old 6']['id']}", {"content": "old 6, edited"}, anna.token)
    assert r.status == 200 and r.body["content"] == "old 6, edited" and r.body["edited_at"], r
    r = await api.call("PATCH", f"/api/v1/messages/{old['old 1']['id']}", {"content": "too late"}, anna.token)
    assert r.status == 403, r  # from 2023: beyond the edit window
    r = await api.call("DELETE", f"/api/v1/messages/{old['old 3']['id']}", None, bert.token)
    assert r.status == 204, r
    await courier.settle()
    pair = await api.history_all(anna, f"/conversations/{bert.user_id}")
    by_seq = {m["seq"]: m for m in pair}
    assert by_seq[2].get("deleted") is True and "content" not in by_seq[2]
    assert [m["seq"] for m in pair] == [5, 4, 3, 2, 1]
    assert by_seq[3]["content"] == "old 6, edited" and by_seq[3]["edited_at"]
    assert by_seq[1]["content"] == "old 1"
