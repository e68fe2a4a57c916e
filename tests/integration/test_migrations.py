"""The alembic migrations, tested like code on SQLite and MariaDB: the stairway
(every revision up, down and up again) and the migrated schema against tables.py."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool, text

from adapters.sql import migrate
from adapters.sql.database import prepare_url
from adapters.sql.tables import include_object, metadata


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def empty_database_url(request) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("make_mysql_database")()


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    return [revision.revision for revision in reversed(list(script.walk_revisions("base", "heads")))]


def table_names(url: str) -> set[str]:
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version", "sqlite_sequence"}
    finally:
        engine.dispose()


def schema_differences(url: str) -> list:
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True,
                                                          "include_object": include_object})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_there_is_one_head():
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_stairway(empty_database_url):
    """Each revision upgrades, downgrades to the one before, and upgrades again."""
    url = empty_database_url
    previous = "base"
    for revision in revisions_oldest_first():
        migrate.upgrade(url, revision)
        migrate.downgrade(url, previous)
        migrate.upgrade(url, revision)
        assert migrate.current(url) == revision
        previous = revision
    migrate.downgrade(url, "base")
    assert table_names(url) == set()
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert table_names(url) == set(metadata.tables)


def test_the_migrated_schema_is_the_one_in_tables_py(empty_database_url):
    migrate.upgrade(empty_database_url)
    assert schema_differences(empty_database_url) == []


def test_upgrade_is_idempotent(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == revisions_oldest_first()[-1]


def test_0002_keeps_users_whose_names_collide_through_a_downgrade_and_upgrade(empty_database_url):
    """Revision 0002 renames and deletes nothing either way; upgraded again, the first
    registered of two look-alikes gets the normalised key again (tests/e2e/test_lookalike_migration.py
    has the report and the logins)."""
    from datetime import datetime

    from sqlalchemy import DateTime, column, table

    url = empty_database_url
    migrate.upgrade(url, "0001")
    users_0001 = table("users", column("id"), column("username"), column("username_key"), column("password_hash"),
                       column("created_at", DateTime()))
    rows = [("00000000-0000-4000-8000-000000000002", "ａｌｉｃｅ", datetime(2026, 1, 2)),
            ("00000000-0000-4000-8000-000000000001", "alice", datetime(2026, 1, 1))]
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(users_0001.insert(), [dict(id=i, username=n, username_key=n.casefold(), password_hash="h",
                                                    created_at=t) for i, n, t in rows])
        for revision in ("0002", "0001", "head"):
            (migrate.downgrade if revision == "0001" else migrate.upgrade)(url, revision)
            with engine.connect() as conn:
                assert sorted(conn.execute(text("SELECT username FROM users")).scalars()) == ["alice", "ａｌｉｃｅ"]
        with engine.connect() as conn:
            keys = dict(conn.execute(text("SELECT username, normalised_key FROM users")).all())
        assert keys == {"alice": "alice", "ａｌｉｃｅ": None}
    finally:
        engine.dispose()


def test_0006_keeps_the_inbox_entries_and_their_sequence(empty_database_url):
    """Revision 0006 (the event log) on 0005's data: every entry stays a message's entry
    (its message_seq, no event), and the next entry - a group change now, message_seq
    NULL - gets a seq after every one handed out before, those deleted included (cursors
    only grow; SQLite copies the table, and keeps its AUTOINCREMENT counter)."""
    from datetime import datetime

    from sqlalchemy import column, table

    url = empty_database_url
    migrate.upgrade(url, "0005")
    user = "00000000-0000-4000-8000-000000000001"
    users_0005 = table("users", column("id"), column("username"), column("username_key"),
                       column("password_hash"), column("created_at"), column("normalised_key"))
    messages_0005 = table("messages", column("seq"), column("id"), column("type"), column("from_user_id"),
                          column("to_user_id"), column("pair_key"), column("content"), column("created_at"),
                          column("conversation_seq"))
    entries_0005 = table("inbox_entries", column("seq"), column("user_id"), column("message_seq"))
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(users_0005.insert(), [dict(id=user, username="anna", username_key="anna",
                                                    password_hash="h", created_at=datetime(2026, 1, 1),
                                                    normalised_key="anna")])
            conn.execute(messages_0005.insert(), [
                dict(seq=n, id=f"00000000-0000-4000-8000-00000000010{n}", type="private", from_user_id=user,
                     to_user_id=user, pair_key=f"{user}:{user}", content=f"m{n}", created_at=1_700_000_000,
                     conversation_seq=n) for n in range(1, 4)])
            conn.execute(entries_0005.insert(), [dict(user_id=user, message_seq=n) for n in range(1, 4)])
            conn.execute(text("DELETE FROM inbox_entries WHERE seq = 3"))  # the newest entry, gone
        migrate.upgrade(url)
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT seq, message_seq, event FROM inbox_entries ORDER BY seq")).all()
            assert [tuple(r) for r in rows] == [(1, 1, None), (2, 2, None)]
            conn.execute(text("INSERT INTO inbox_entries (user_id, message_seq, event) VALUES (:u, NULL, :e)"),
                         {"u": user, "e": '{"type": "group_updated"}'})
            assert conn.execute(text("SELECT MAX(seq) FROM inbox_entries")).scalar() == 4
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_mysql_tables_are_utf8mb4_with_binary_collation(make_mysql_database):
    url = make_mysql_database()
    migrate.upgrade(url)
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_name, table_collation FROM information_schema.tables"
                    " WHERE table_schema = DATABASE()"
                )
            ).all()
    finally:
        engine.dispose()
    collations = {name: collation for name, collation in rows if name != "alembic_version"}
    assert collations == {name: "utf8mb4_bin" for name in metadata.tables}


def test_the_sqlite_file_and_its_directory_are_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'nested' / 'deeper' / 'courier.db'}"
    migrate.upgrade(url)
    assert (tmp_path / "nested" / "deeper" / "courier.db").exists()


def test_the_alembic_command_line_uses_courier_database_url(sqlite_url):
    """`alembic upgrade head` from the repository top, configured by the environment."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {"COURIER_DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=repo, env=env, check=True,
                   capture_output=True)
    assert table_names(sqlite_url) == set(metadata.tables)


@pytest.mark.mysql
def test_courier_migrate_refused_by_the_server_says_so_in_one_line():
    """A wrong password: one error line, the URL without the password, exit status 1."""
    import subprocess
    import sys
    from pathlib import Path

    courier = Path(sys.executable).parent / "courier"
    env = {"COURIER_DATABASE_URL": "mysql+pymysql://root:not-the-password@127.0.0.1:3306/courier_nope",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(courier), "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "cannot migrate mysql+pymysql://root:***@127.0.0.1:3306/courier_nope" in lines[0]
    assert "not-the-password" not in done.stderr and "Traceback" not in done.stderr


def test_0012_counts_the_members_of_every_group_and_downgrades_keeping_them(empty_database_url):
    """Revision 0012 (large groups) on 0011's data: every group becomes a small "group" at
    member version 0 with its members counted (an empty group: 0), every conversation row
    is not large; a large group's stream written after it goes away with the downgrade,
    and the groups, their members and messages stay."""
    from datetime import datetime

    from sqlalchemy import column, table

    url = empty_database_url
    migrate.upgrade(url, "0011")
    users = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 5)]
    groups = {"00000000-0000-4000-8000-000000000101": users, "00000000-0000-4000-8000-000000000102": users[:1],
              "00000000-0000-4000-8000-000000000103": []}
    users_0011 = table("users", column("id"), column("username"), column("username_key"), column("password_hash"),
                       column("created_at"), column("normalised_key"))
    groups_0011 = table("groups", column("id"), column("name"), column("owner_id"), column("created_at"))
    members_0011 = table("group_members", column("group_id"), column("user_id"), column("position"),
                         column("joined_at"))
    conversation_members_0011 = table("conversation_members", column("user_id"), column("conversation"),
                                      column("group_id"), column("read_seq"), column("activity"))
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    at = datetime(2026, 1, 1)
    try:
        with engine.begin() as conn:
            conn.execute(users_0011.insert(), [dict(id=u, username=f"u{i}", username_key=f"u{i}", password_hash="h",
                                                    created_at=at, normalised_key=f"u{i}")
                                               for i, u in enumerate(users)])
            conn.execute(groups_0011.insert(), [dict(id=g, name=g[-3:], owner_id=users[0], created_at=at)
                                                for g in groups])
            conn.execute(members_0011.insert(), [dict(group_id=g, user_id=u, position=p, joined_at=at)
                                                 for g, members in groups.items()
                                                 for p, u in enumerate(members, start=1)])
            conn.execute(conversation_members_0011.insert(), [dict(user_id=u, conversation="g:" + g, group_id=g,
                                                                   read_seq=0, activity=1)
                                                              for g, members in groups.items() for u in members])
        migrate.upgrade(url, "0012")
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT id, kind, member_count, member_version FROM `groups`"
                                     if conn.dialect.name != "sqlite" else
                                     'SELECT id, kind, member_count, member_version FROM "groups"')).all()
            assert {r.id: (r.kind, r.member_count, r.member_version) for r in rows} == {
                g: ("group", len(members), 0) for g, members in groups.items()}
            assert set(conn.execute(text("SELECT large FROM conversation_members")).scalars()) == {False}
            # A stream, as the embedded mode writes one, and a checkpoint.
            big = next(iter(groups))
            conn.execute(text("INSERT INTO group_streams (group_id, large_at_version) VALUES (:g, 4)"), {"g": big})
            conn.execute(text("INSERT INTO group_entries (group_id, message_seq, event) VALUES (:g, NULL, NULL)"),
                         {"g": big})
            conn.execute(text("INSERT INTO group_intervals (group_id, user_id, joined_after) VALUES (:g, :u, 1)"),
                         {"g": big, "u": users[1]})
            conn.execute(text("INSERT INTO cursor_checkpoints (user_id, id, vector, created_at) "
                              "VALUES (:u, 1, '1=1-0', 0)"), {"u": users[1]})
        migrate.downgrade(url, "0011")
        assert table_names(url) == set(metadata.tables) - {
            "group_streams", "group_invitations", "group_entries", "group_entry_trims", "group_intervals",
            "group_stream_changes", "cursor_checkpoints"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM group_members")).scalar() == 5
            assert conn.execute(text("SELECT COUNT(*) FROM conversation_members")).scalar() == 5
            columns = {c["name"] for c in inspect(conn).get_columns("groups")}
            assert columns == {"id", "name", "owner_id", "created_at"}
        migrate.upgrade(url)  # and up again: counted anew, the stream gone
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM group_streams")).scalar() == 0
            counts = conn.execute(text("SELECT SUM(member_count) FROM `groups`" if conn.dialect.name != "sqlite"
                                       else 'SELECT SUM(member_count) FROM "groups"')).scalar()
            assert counts == 5
    finally:
        engine.dispose()


def test_0013_keeps_the_stored_announcements_and_their_sequence_both_ways(empty_database_url):
    """Revision 0013 (group_announcements.stream_change) on 0012's data: every stored
    announcement stays, with no stream change (NULL). Down again, one stored with a change
    loses that column only, and the next one stored gets a seq after every one handed out
    before, those deleted (announced) included: SQLite copies the table, and keeps its
    AUTOINCREMENT counter (seq is the order the changes were made). Up again, each one is
    there with no change."""
    import json

    from sqlalchemy import column, table

    url = empty_database_url
    migrate.upgrade(url, "0012")
    ids = [f"00000000-0000-4000-8000-00000000020{n}" for n in range(1, 5)]
    announcements_0012 = table("group_announcements", column("event_id"), column("record"),
                               column("recipient_ids"), column("created_at"))

    def stored(n: int) -> dict:
        record = {"type": "group_updated", "id": ids[n], "group_id": "00000000-0000-4000-8000-000000000101",
                  "name": f"g{n}", "by_user_id": "00000000-0000-4000-8000-000000000001", "created_at": 100 + n}
        return dict(event_id=ids[n], record=json.dumps(record), recipient_ids=json.dumps([f"u{n}"]),
                    created_at=100 + n)

    every = "SELECT seq, event_id, record, recipient_ids, created_at FROM group_announcements ORDER BY seq"
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(announcements_0012.insert(), [stored(n) for n in range(3)])
            conn.execute(text("DELETE FROM group_announcements WHERE event_id = :e"), {"e": ids[2]})  # announced
            before = [tuple(r) for r in conn.execute(text(every))]
        assert [(r[0], r[1]) for r in before] == [(1, ids[0]), (2, ids[1])]
        migrate.upgrade(url, "0013")
        with engine.begin() as conn:
            assert [tuple(r) for r in conn.execute(text(every))] == before
            assert list(conn.execute(text("SELECT stream_change FROM group_announcements")).scalars()) == [None] * 2
            change = '{"type":"member","kind":"join","group_id":"g","event_id":"e","version":3,"user_ids":["u1"]}'
            conn.execute(text("UPDATE group_announcements SET stream_change = :c WHERE event_id = :e"),
                         {"c": change, "e": ids[1]})
        migrate.downgrade(url, "0012")
        with engine.begin() as conn:
            assert {c["name"] for c in inspect(conn).get_columns("group_announcements")} == {
                "seq", "event_id", "record", "recipient_ids", "created_at"}
            assert [tuple(r) for r in conn.execute(text(every))] == before
            conn.execute(announcements_0012.insert(), [stored(3)])
            assert conn.execute(text("SELECT seq FROM group_announcements WHERE event_id = :e"),
                                {"e": ids[3]}).scalar() == 4
        migrate.upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, event_id, stream_change FROM group_announcements ORDER BY seq"))
            assert [tuple(r) for r in rows] == [(1, ids[0], None), (2, ids[1], None), (4, ids[3], None)]
    finally:
        engine.dispose()


def test_0015_keys_messages_by_conversation_and_keeps_them_and_their_sequence_both_ways(empty_database_url):
    """Revision 0015 (messages for a sharded MySQL) on 0014's data: every message gets its
    conversation ("p:<pair_key>", "g:<group_id>"), keeps its seq and conversation_seq,
    and the next one stored gets a seq after every one handed out before, the deleted
    newest included (SQLite copies the table; MySQL moves its primary key). On MySQL the
    primary key is (conversation, conversation_seq) and seq is unique; the foreign keys to
    users and groups are gone (both dialects). Down again: the same rows, the old keys."""
    from datetime import datetime

    from sqlalchemy import column, table

    url = empty_database_url
    migrate.upgrade(url, "0014")
    anna, bob = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    group = "00000000-0000-4000-8000-000000000101"
    pair = f"{anna}:{bob}"
    users_0014 = table("users", column("id"), column("username"), column("username_key"), column("password_hash"),
                       column("created_at"), column("normalised_key"))
    groups_0014 = table("groups", column("id"), column("name"), column("owner_id"), column("created_at"))
    messages_0014 = table("messages", column("seq"), column("id"), column("type"), column("from_user_id"),
                          column("to_user_id"), column("group_id"), column("pair_key"), column("content"),
                          column("created_at"), column("conversation_seq"))

    def message(seq: int, conversation_seq: int, **where) -> dict:
        return dict(seq=seq, id=f"00000000-0000-4000-8000-00000000030{seq}", from_user_id=anna, content=f"m{seq}",
                    created_at=1_700_000_000, conversation_seq=conversation_seq, **where)

    private = dict(type="private", to_user_id=bob, group_id=None, pair_key=pair)
    in_group = dict(type="group", to_user_id=None, group_id=group, pair_key=None)
    every = "SELECT seq, id, pair_key, group_id, conversation_seq, content FROM messages ORDER BY seq"
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(users_0014.insert(), [dict(id=u, username=n, username_key=n, password_hash="h",
                                                    created_at=datetime(2026, 1, 1), normalised_key=n)
                                               for u, n in ((anna, "anna"), (bob, "bob"))])
            conn.execute(groups_0014.insert(), [dict(id=group, name="g", owner_id=anna,
                                                     created_at=datetime(2026, 1, 1))])
            conn.execute(messages_0014.insert(), [message(1, 1, **private), message(2, 1, **in_group),
                                                  message(3, 2, **private), message(4, 2, **in_group)])
            conn.execute(text("DELETE FROM messages WHERE seq = 4"))  # the newest, gone
            before = [tuple(r) for r in conn.execute(text(every))]
        migrate.upgrade(url, "0015")
        with engine.begin() as conn:
            assert [tuple(r) for r in conn.execute(text(every))] == before
            conversations = dict(conn.execute(text("SELECT seq, conversation FROM messages")).all())
            assert conversations == {1: "p:" + pair, 2: "g:" + group, 3: "p:" + pair}
            assert inspect(conn).get_foreign_keys("messages") == []
            if conn.dialect.name != "sqlite":
                assert inspect(conn).get_pk_constraint("messages")["constrained_columns"] == [
                    "conversation", "conversation_seq"]
                assert {"uq_messages_seq"} <= {i["name"] for i in inspect(conn).get_indexes("messages")}
            conn.execute(text("INSERT INTO messages (id, type, from_user_id, to_user_id, pair_key, conversation,"
                              " content, created_at, conversation_seq) VALUES (:i, 'private', :a, :b, :p, :c,"
                              " 'm5', 1700000000, 3)"),
                         {"i": "00000000-0000-4000-8000-000000000305", "a": anna, "b": bob, "p": pair,
                          "c": "p:" + pair})
            assert conn.execute(text("SELECT MAX(seq) FROM messages")).scalar() == 5
            conn.execute(text("DELETE FROM messages WHERE seq = 5"))
        migrate.downgrade(url, "0014")
        with engine.begin() as conn:
            assert [tuple(r) for r in conn.execute(text(every))] == before
            assert "conversation" not in {c["name"] for c in inspect(conn).get_columns("messages")}
            assert inspect(conn).get_pk_constraint("messages")["constrained_columns"] == ["seq"]
            assert {fk["name"] for fk in inspect(conn).get_foreign_keys("messages")} == {
                "fk_messages_from_user_id_users", "fk_messages_to_user_id_users", "fk_messages_group_id_groups"}
            conn.execute(messages_0014.insert(), [{**message(6, 3, **private), "seq": None}])
            assert conn.execute(text("SELECT MAX(seq) FROM messages")).scalar() == 6
        migrate.upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, conversation, conversation_seq FROM messages ORDER BY seq"))
            assert [tuple(r) for r in rows] == [(1, "p:" + pair, 1), (2, "g:" + group, 1), (3, "p:" + pair, 2),
                                                (6, "p:" + pair, 3)]
    finally:
        engine.dispose()


def test_0016_drops_the_group_tables_keys_to_users_and_keeps_their_rows_both_ways(empty_database_url):
    """Revision 0016 on 0015's data: a group, its members and an invitation stay as they
    were; the foreign keys to users go (their indexes stay), those to groups stay. Down
    again: the same rows, the keys to users back."""
    from datetime import datetime

    from sqlalchemy import column, table

    url = empty_database_url
    migrate.upgrade(url, "0015")
    anna, bob, carl = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 4))
    group = "00000000-0000-4000-8000-000000000101"
    at = datetime(2026, 1, 1)
    users_0015 = table("users", column("id"), column("username"), column("username_key"), column("password_hash"),
                       column("created_at"), column("normalised_key"))
    groups_0015 = table("groups", column("id"), column("name"), column("owner_id"), column("created_at"),
                        column("member_count"))
    members_0015 = table("group_members", column("group_id"), column("user_id"), column("position"),
                         column("joined_at"))
    invitations_0015 = table("group_invitations", column("group_id"), column("user_id"), column("invited_by"),
                             column("created_at"))
    queries = {"groups": "SELECT id, owner_id, member_count FROM {}",
               "group_members": "SELECT group_id, user_id, position FROM group_members ORDER BY position",
               "group_invitations": "SELECT group_id, user_id, invited_by FROM group_invitations"}

    def rows(conn) -> dict:
        quoted = '"groups"' if conn.dialect.name == "sqlite" else "`groups`"
        return {name: [tuple(r) for r in conn.execute(text(query.format(quoted)))] for name, query in queries.items()}

    def foreign_keys(conn) -> dict:
        found = inspect(conn)
        return {name: {(fk["constrained_columns"][0], fk["referred_table"]) for fk in found.get_foreign_keys(name)}
                for name in queries}

    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(users_0015.insert(), [dict(id=u, username=n, username_key=n, password_hash="h", created_at=at,
                                                    normalised_key=n)
                                               for u, n in ((anna, "anna"), (bob, "bob"), (carl, "carl"))])
            conn.execute(groups_0015.insert(), [dict(id=group, name="g", owner_id=anna, created_at=at, member_count=2)])
            conn.execute(members_0015.insert(), [dict(group_id=group, user_id=u, position=p, joined_at=at)
                                                 for p, u in enumerate((anna, bob), start=1)])
            conn.execute(invitations_0015.insert(), [dict(group_id=group, user_id=carl, invited_by=anna,
                                                          created_at=at)])
            before = rows(conn)
            keys_before = foreign_keys(conn)
        assert keys_before == {"groups": {("owner_id", "users")},
                               "group_members": {("group_id", "groups"), ("user_id", "users")},
                               "group_invitations": {("group_id", "groups"), ("user_id", "users"),
                                                     ("invited_by", "users")}}
        migrate.upgrade(url, "0016")
        with engine.connect() as conn:
            assert rows(conn) == before
            assert foreign_keys(conn) == {"groups": set(), "group_members": {("group_id", "groups")},
                                          "group_invitations": {("group_id", "groups")}}
            indexes = {i["name"] for name in queries for i in inspect(conn).get_indexes(name)}
            assert {"ix_groups_owner_id", "ix_group_invitations_user_id", "ix_group_invitations_invited_by",
                    "ix_group_members_user_id_joined_at_group_id"} <= indexes
        migrate.downgrade(url, "0015")
        with engine.connect() as conn:
            assert rows(conn) == before
            assert foreign_keys(conn) == keys_before
        migrate.upgrade(url)
        with engine.connect() as conn:
            assert rows(conn) == before
    finally:
        engine.dispose()
