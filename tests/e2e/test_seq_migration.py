"""Revision 0005 on a database that holds 0001's data (issue 14, point 5): every stored
message gets its seq, per conversation in stored order; history reads in that order;
the pull goes on from a cursor handed out before the upgrade; new messages go on after
the highest seq stored. Embedded: a SQLite file; production: a MariaDB database (the
inboxes are Redis streams there, which the migration does not touch: an entry appended
before the upgrade has no seq)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
import pytest
import redis
from sqlalchemy import column, create_engine, insert, pool, table

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.sql import migrate
from adapters.sql.database import prepare_url
from entrypoints.settings import EMBEDDED
from tests.e2e.client import Account
from tests.e2e.conftest import OnCluster
from tests.e2e.test_lookalike_migration import fill_0001_users, password_of

GROUP_0001 = table("groups", column("id"), column("name"), column("owner_id"), column("created_at"))
MEMBERS_0001 = table("group_members", column("group_id"), column("user_id"), column("position"),
                     column("joined_at"))
MESSAGES_0001 = table("messages", column("seq"), column("id"), column("type"), column("from_user_id"),
                      column("to_user_id"), column("group_id"), column("pair_key"), column("content"),
                      column("created_at"), column("client_msg_id"))
INBOX_0001 = table("inbox_entries", column("seq"), column("user_id"), column("message_seq"))


@dataclass
class Legacy:
    url: str
    ids: dict[str, str]
    group_id: str
    messages: list[dict]  # as stored, in stored order


@pytest.fixture
def legacy(mode, tmp_path, request) -> Legacy:
    if mode == EMBEDDED:
        url = f"sqlite:///{tmp_path / 'legacy' / 'courier.db'}"
    else:
        url = request.getfixturevalue("make_mysql_database")()
    migrate.upgrade(url, "0001")
    ids = fill_0001_users(url, ["anna", "bert", "cleo"])
    anna, bert, cleo = ids["anna"], ids["bert"], ids["cleo"]
    group_id = str(uuid.uuid4())
    pair = ":".join(sorted((anna, bert)))
    # Stored order (seq): anna and bert's conversation, the group's and anna and cleo's, interleaved.
    plan = [(anna, bert, None), (None, None, anna), (bert, anna, None), (anna, cleo, None), (None, None, bert),
            (anna, bert, None), (None, None, cleo), (bert, anna, None)]
    rows = []
    for seq, (sender, to, group_sender) in enumerate(plan, start=1):
        private = group_sender is None
        rows.append(dict(
            seq=seq, id=str(uuid.uuid4()), type="private" if private else "group",
            from_user_id=sender if private else group_sender, to_user_id=to if private else None,
            group_id=None if private else group_id,
            pair_key=":".join(sorted((sender, to))) if private else None,
            content=f"old {seq}", created_at=1_700_000_000, client_msg_id=None))
    assert sum(1 for r in rows if r["pair_key"] == pair) == 4
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(GROUP_0001), [dict(id=group_id, name="old team", owner_id=anna,
                                                   created_at=datetime(2026, 1, 1))])
            conn.execute(insert(MEMBERS_0001), [dict(group_id=group_id, user_id=user, position=i,
                                                     joined_at=datetime(2026, 1, 1))
                                                for i, user in enumerate((anna, bert, cleo))])
            conn.execute(insert(MESSAGES_0001), rows)
            # bert's inbox, embedded mode: what was delivered to him, in order.
            to_bert = [r for r in rows if r["to_user_id"] == bert or (r["group_id"] and r["from_user_id"] != bert)]
            conn.execute(insert(INBOX_0001), [dict(seq=i, user_id=bert, message_seq=r["seq"])
                                              for i, r in enumerate(to_bert, start=1)])
    finally:
        engine.dispose()
    migrate.upgrade(url)  # what `courier migrate` does (and `courier serve`, for a SQLite file)
    if mode != EMBEDDED:
        # bert's inbox stream as an older gateway wrote it: records without seq (on a
        # cluster in his bucket's log, of the cluster emptied for the test first).
        if isinstance(mode, OnCluster):
            request.getfixturevalue("redis_cluster_url")
            node = request.getfixturevalue("redis_cluster").url
            client, inbox = redis.RedisCluster.from_url(node), ClusterKeys(Buckets()).log(bert)
        else:
            client, inbox = redis.Redis.from_url(request.getfixturevalue("redis_url")), f"stream:private:{bert}"
        with client:
            for i, r in enumerate(to_bert, start=1):
                record = {k: r[k] for k in ("type", "id", "from_user_id", "content", "created_at")}
                record.update({"to_user_id": r["to_user_id"]} if r["type"] == "private" else {"group_id": group_id})
                client.xadd(inbox, {"m": orjson.dumps(record)}, id=f"{i}-0")
    return Legacy(url, ids, group_id, rows)


@pytest.fixture
def settings_overrides(legacy) -> dict:
    return {"database_url": legacy.url}


async def login(api, name):
    r = await api.login(name, password_of(name))
    assert r.status == 200, r
    return Account(r.body["user_id"], name, password_of(name), r.body["token"])


@pytest.mark.gen_test(timeout=60)
async def test_old_messages_are_numbered_per_conversation_in_stored_order(api, legacy):
    anna, bert = await login(api, "anna"), await login(api, "bert")
    old = {r["id"]: r for r in legacy.messages}
    pair = await api.history_all(bert, f"/conversations/{anna.user_id}")
    assert [(m["content"], m["seq"]) for m in pair] == [("old 8", 4), ("old 6", 3), ("old 3", 2), ("old 1", 1)]
    group = await api.history_all(anna, f"/groups/{legacy.group_id}", limit=2)
    assert [(m["content"], m["seq"]) for m in group] == [("old 7", 3), ("old 5", 2), ("old 2", 1)]
    cleo = await api.history_all(anna, f"/conversations/{legacy.ids['cleo']}")
    assert [(m["content"], m["seq"]) for m in cleo] == [("old 4", 1)]
    assert all(m["id"] in old and old[m["id"]]["content"] == m["content"] for m in pair + group + cleo)
    r = await api.history(anna, f"/conversations/{bert.user_id}", before="3")
    assert [m["content"] for m in r.body["messages"]] == ["old 3", "old 1"]

    # New messages go on after the highest seq stored, in both conversations.
    assert (await api.send(anna, bert, "new")).body["seq"] == 5
    assert (await api.send_group(bert, legacy.group_id, "new in group")).body["seq"] == 4


@pytest.mark.gen_test(timeout=60)
async def test_the_pull_goes_on_from_a_cursor_of_before_the_upgrade(api, legacy, mode):
    anna, bert = await login(api, "anna"), await login(api, "bert")
    everything, _ = await api.pull_all(bert)
    assert [m["content"] for m in everything] == ["old 1", "old 2", "old 6", "old 7"]
    if mode == EMBEDDED:  # the inbox is in the database: its messages have their seqs
        assert [m["seq"] for m in everything] == [1, 1, 3, 3]
    else:  # entries an older gateway appended to Redis carry none
        assert all("seq" not in m for m in everything)
    old_cursor = everything[1]["cursor"]
    sent = (await api.send(anna, bert, "after the upgrade")).body
    after, _ = await api.pull_all(bert, old_cursor)
    assert [m["content"] for m in after] == ["old 6", "old 7", "after the upgrade"]
    assert after[-1]["seq"] == sent["seq"] == 5 and after[-1]["id"] == sent["id"]


def describe(event: dict) -> tuple:
    if event["type"] in ("private", "group"):
        return event["type"], event["content"], event.get("seq"), event.get("client_msg_id")
    return event["type"], event["group_id"], event.get("name", event.get("user_id")), event["by_user_id"]


@pytest.mark.gen_test(timeout=60)
async def test_both_views_pull_and_resume_from_a_cursor_of_before_the_upgrade(api, legacy, mode):
    """0001's data upgraded to head (0006: inbox_entries.event, message_seq nullable): the
    event view reads the old entries as messages, and from an old cursor both views go on
    into what came after the upgrade - a group change, an own send, a message from others -
    over the pull and over the socket, each once, with cursors that go on growing."""
    anna, bert = await login(api, "anna"), await login(api, "bert")
    old_events, _ = await api.events_all(bert)
    old_messages, _ = await api.pull_all(bert)
    assert [e["content"] for e in old_events] == ["old 1", "old 2", "old 6", "old 7"]
    assert old_events == old_messages  # messages from others only: the views agree on them
    old_cursor = old_events[1]["cursor"]

    r = await api.call("PATCH", f"/api/v1/groups/{legacy.group_id}", {"name": "new team"}, anna.token)
    assert r.status == 200, r
    mine = (await api.send(bert, anna, "mine after", client_msg_id="b-1")).body
    theirs = (await api.send(anna, bert, "theirs after")).body
    assert (mine["seq"], theirs["seq"]) == (5, 6)
    old_seq = (lambda s: s) if mode == EMBEDDED else (lambda s: None)  # an older gateway's entries carry none
    expected = [("private", "old 6", old_seq(3), None), ("group", "old 7", old_seq(3), None),
                ("group_updated", legacy.group_id, "new team", anna.user_id),
                ("private", "mine after", 5, "b-1"), ("private", "theirs after", 6, None)]
    events, _ = await api.events_all(bert, old_cursor)
    assert [describe(e) for e in events] == expected
    assert [e["id"] for e in events][3:] == [mine["id"], theirs["id"]]
    cursors = [e["cursor"] for e in old_events[:2] + events]
    assert len(set(cursors)) == len(cursors)
    messages, _ = await api.pull_all(bert, old_cursor)
    assert [m["content"] for m in messages] == ["old 6", "old 7", "theirs after"]
    assert [m["cursor"] for m in messages] == [events[0]["cursor"], events[1]["cursor"], events[4]["cursor"]]
    # The sockets from the old cursor replay the same, in either view.
    ws = await api.connect(bert, cursor=old_cursor, events=True)
    assert await ws.take(len(events)) == events
    assert await ws.nothing()
    ws = await api.connect(bert, cursor=old_cursor)
    assert await ws.take(len(messages)) == messages
    assert await ws.nothing()
    # anna's log: the change and the new messages (her own send with its client_msg_id none:
    # it was sent without one); the history reads across the upgrade, by seq.
    anna_events, _ = await api.events_all(anna)
    assert [describe(e) for e in anna_events][-3:] == [
        ("group_updated", legacy.group_id, "new team", anna.user_id),
        ("private", "mine after", 5, None), ("private", "theirs after", 6, None)]
    pair = await api.history_all(bert, f"/conversations/{anna.user_id}")
    assert [m["seq"] for m in pair] == [6, 5, 4, 3, 2, 1]
