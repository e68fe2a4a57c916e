"""The schema's rules for a sharded MySQL (Vitess, TiDB; docs/design/mysql-sharding.md),
checked with no sharded server: on the metadata (adapters/sql/tables.py) and on a
MariaDB database migrated by alembic (information_schema).

Every table is either used by production mode, with the shard key the design gives it,
or used only by the embedded mode (one process, never sharded). For every production
table: no AUTO_INCREMENT column, a primary key that starts with the shard key, and no
foreign key to a table sharded by something else - each exception named below with its
reason. A new table fails here until it is placed in one of the two lists, and a new
auto-increment key or cross-shard foreign key fails until it is listed with a reason."""
from __future__ import annotations

from typing import NamedTuple

import pytest
from sqlalchemy import create_engine, pool, text

from adapters.sql.database import prepare_url
from adapters.sql.tables import MYSQL_MESSAGES_KEYS, metadata


class Shard(NamedTuple):
    column: str  # the column Vitess's primary vindex hashes (TiDB: the clustered key's first)
    domain: str  # what its value is: rows with the same domain and value lie on one shard


# Production mode (Redis + MySQL) reads and writes these (entrypoints/container.py: the
# Sql* adapters that both modes or production use).
PRODUCTION = {
    "users": Shard("id", "user"),
    "groups": Shard("id", "group"),
    "group_members": Shard("group_id", "group"),  # a user's groups: a lookup vindex on user_id
    "group_invitations": Shard("group_id", "group"),
    "group_streams": Shard("group_id", "group"),
    "messages": Shard("conversation", "conversation"),  # find by id: a lookup vindex on id
    "conversations": Shard("conversation", "conversation"),
    "conversation_members": Shard("user_id", "user"),  # a user's list is read by user
    # Not co-located yet with the rows they are written with (design, "What remains"):
    "message_changes": Shard("message_id", "message"),  # written with its message's row (by conversation)
    "group_announcements": Shard("event_id", "event"),  # the outbox, written with every kind of change
}

# Only the embedded mode (SQLite, one process; or one MySQL server without Redis) uses
# these: production keeps the same data in Redis. Never sharded.
EMBEDDED_ONLY = {
    "inbox_entries": "the users' logs (production: Redis streams)",
    "inbox_trims": "where each log was trimmed (production: Redis XTRIM)",
    "idempotency_keys": "client_msg_id answers (production: RedisIdempotencyKeys)",
    "revoked_tokens": "log-outs (production: RedisTokenRevocations)",
    "token_floors": "log-outs everywhere (production: RedisTokenRevocations)",
    "appended_events": "relayed events already in the SQLite logs (production: Redis scripts)",
    "group_entries": "large groups' streams (production: lg:{G} streams in Redis)",
    "group_entry_trims": "large groups' stream trims (production: Redis)",
    "group_intervals": "members' intervals in a large group's stream (production: Redis)",
    "group_stream_changes": "membership changes applied to a stream (production: Redis)",
    "cursor_checkpoints": "cursor checkpoints (production: RedisCursorCheckpoints)",
}

# Production tables that keep an auto-increment column, and why.
AUTO_INCREMENT_EXCEPTIONS = {
    ("messages", "seq"): "the embedded mode's one global order (inbox_entries and group_entries point at it), when it "
                         "runs on one MySQL server; production always writes the acceptance order into it (the "
                         "counter never hands one out) and never reads it. A unique key, not the primary key",
    ("group_streams", "stream_no"): "a large group's stream number, named by cursors: one global counter, used once "
                                    "per group that becomes large (Vitess: a sequence; TiDB: AUTO_INCREMENT)",
    ("group_announcements", "seq"): "the outbox's relay order: rows are deleted once relayed, each relay reads its "
                                    "shard's oldest (Vitess: the shard's own counter; TiDB: AUTO_INCREMENT)",
}

# Production tables whose primary key (as MySQL has it) does not start with the shard key.
PRIMARY_KEY_EXCEPTIONS = {
    "group_streams": "stream_no (above) is the key cursors name; group_id is unique beside it",
    "group_announcements": "seq (above), the relay order; event_id is unique beside it",
}

# Foreign keys between production tables with different shard keys, and why (none).
CROSS_SHARD_FOREIGN_KEY_EXCEPTIONS: dict[tuple[str, str, str], str] = {}


def test_every_table_is_production_or_embedded_only():
    assert not set(PRODUCTION) & set(EMBEDDED_ONLY)
    assert set(PRODUCTION) | set(EMBEDDED_ONLY) == set(metadata.tables), "place the new table in one of the lists"
    for name, shard in PRODUCTION.items():
        assert shard.column in metadata.tables[name].c, (name, shard)


def co_located(table: str, column: str, referred_table: str, referred_column: str) -> bool:
    """A foreign key stays within one shard when it joins both tables on their shard keys,
    which hold values of one domain (hashed alike)."""
    child, parent = PRODUCTION[table], PRODUCTION.get(referred_table)
    return (parent is not None and child.column == column and parent.column == referred_column
            and child.domain == parent.domain)


def test_metadata_production_tables_have_no_auto_increment_but_the_listed():
    found = {(name, metadata.tables[name].autoincrement_column.name) for name in PRODUCTION
             if metadata.tables[name].autoincrement_column is not None}
    assert found == set(AUTO_INCREMENT_EXCEPTIONS)


def test_metadata_primary_keys_start_with_the_shard_key():
    leading = {name: metadata.tables[name].primary_key.columns.values()[0].name for name in PRODUCTION}
    # messages: the metadata declares SQLite's key (seq, its AUTOINCREMENT rowid); MySQL's
    # is made by revision 0015 and create_all's hook, and checked on MariaDB below.
    assert "ADD PRIMARY KEY (conversation, conversation_seq)" in MYSQL_MESSAGES_KEYS
    leading["messages"] = "conversation"
    wrong = {name for name, column in leading.items() if column != PRODUCTION[name].column}
    assert wrong == set(PRIMARY_KEY_EXCEPTIONS)


def test_metadata_has_no_foreign_key_across_shards():
    crossing = {(name, fk.parent.name, fk.column.table.name) for name in PRODUCTION
                for fk in metadata.tables[name].foreign_keys
                if not co_located(name, fk.parent.name, fk.column.table.name, fk.column.name)}
    assert crossing == set(CROSS_SHARD_FOREIGN_KEY_EXCEPTIONS)


def test_the_embedded_mode_keeps_its_global_order_on_sqlite():
    """The one exception that is a choice: messages.seq stays SQLite's AUTOINCREMENT primary key."""
    messages = metadata.tables["messages"]
    assert [c.name for c in messages.primary_key] == ["seq"]
    assert messages.dialect_options["sqlite"]["autoincrement"] is True


@pytest.fixture
def migrated(mysql_migrated_url):
    engine = create_engine(prepare_url(mysql_migrated_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def rows(conn, query: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(text(query))]


@pytest.mark.mysql
def test_mariadb_tables_are_the_classified_ones(migrated):
    tables = {name for (name,) in rows(migrated, "SELECT table_name FROM information_schema.tables"
                                                 " WHERE table_schema = DATABASE()")}
    assert tables - {"alembic_version"} == set(PRODUCTION) | set(EMBEDDED_ONLY)


@pytest.mark.mysql
def test_mariadb_production_tables_have_no_auto_increment_but_the_listed(migrated):
    found = {(t, c) for t, c in rows(migrated, "SELECT table_name, column_name FROM information_schema.columns"
                                               " WHERE table_schema = DATABASE() AND extra LIKE '%auto_increment%'")
             if t in PRODUCTION}
    assert found == set(AUTO_INCREMENT_EXCEPTIONS)


@pytest.mark.mysql
def test_mariadb_primary_keys_start_with_the_shard_key_and_messages_with_the_conversation(migrated):
    keys: dict[str, list[str]] = {}
    for table, column in rows(migrated, "SELECT table_name, column_name FROM information_schema.key_column_usage"
                                        " WHERE table_schema = DATABASE() AND constraint_name = 'PRIMARY'"
                                        " ORDER BY table_name, ordinal_position"):
        keys.setdefault(table, []).append(column)
    assert keys["messages"] == ["conversation", "conversation_seq"]
    wrong = {name for name in PRODUCTION if keys[name][0] != PRODUCTION[name].column}
    assert wrong == set(PRIMARY_KEY_EXCEPTIONS)
    unique = {(t, c) for t, c in rows(migrated, "SELECT table_name, column_name FROM information_schema.statistics"
                                                " WHERE table_schema = DATABASE() AND index_name = 'uq_messages_seq'"
                                                " AND non_unique = 0")}
    assert unique == {("messages", "seq")}  # the embedded mode's order stays unique


@pytest.mark.mysql
def test_mariadb_has_no_foreign_key_across_shards(migrated):
    foreign = rows(migrated, "SELECT table_name, column_name, referenced_table_name, referenced_column_name"
                             " FROM information_schema.key_column_usage WHERE table_schema = DATABASE()"
                             " AND referenced_table_name IS NOT NULL")
    assert foreign  # the query sees foreign keys at all (those of the embedded tables, within one group)
    crossing = {(t, c, rt) for t, c, rt, rc in foreign if t in PRODUCTION and not co_located(t, c, rt, rc)}
    assert crossing == set(CROSS_SHARD_FOREIGN_KEY_EXCEPTIONS)


def test_the_vitess_vschema_shards_each_production_table_on_its_shard_key():
    """docs/design/vitess/vschema.json (docs/design/mysql-sharding.md, 5): each production
    table's primary vindex (its first) is on the shard key above, through one functional
    vindex, so that equal values of a domain land on one shard; every vindex it names exists,
    and each lookup vindex is owned by a production table with that column."""
    import json
    from pathlib import Path

    vschema = json.loads((Path(__file__).resolve().parents[2] / "docs/design/vitess/vschema.json").read_text())
    vindexes, tables = vschema["vindexes"], vschema["tables"]
    assert set(PRODUCTION) <= set(tables)
    primary = {name: tables[name]["column_vindexes"][0] for name in PRODUCTION}
    assert {name: v["column"] for name, v in primary.items()} == {name: s.column for name, s in PRODUCTION.items()}
    assert {v["name"] for v in primary.values()} == {"xxhash"} and vindexes["xxhash"]["type"] == "xxhash"
    for name, table in tables.items():
        for vindex in table["column_vindexes"]:
            assert vindex["name"] in vindexes, (name, vindex)
            owner = vindexes[vindex["name"]].get("owner")
            if owner is not None:
                assert owner == name in PRODUCTION and vindex["column"] in metadata.tables[name].c
    assert tables["messages"]["column_vindexes"][1] == {"column": "id", "name": "messages_id_lookup"}
    assert tables["group_streams"]["auto_increment"]["column"] == "stream_no"


@pytest.mark.mysql
def test_create_all_gives_mysql_the_keys_the_migration_gives(make_mysql_database):
    """tables.py's after_create hook: a schema made by metadata.create_all (not alembic)
    has messages keyed by conversation too, with seq unique."""
    from sqlalchemy import inspect

    engine = create_engine(prepare_url(make_mysql_database()), poolclass=pool.NullPool)
    try:
        metadata.create_all(engine)
        with engine.connect() as conn:
            found = inspect(conn)
            assert found.get_pk_constraint("messages")["constrained_columns"] == ["conversation", "conversation_seq"]
            unique = {i["name"]: i["column_names"] for i in found.get_indexes("messages") if i["unique"]}
            assert unique["uq_messages_seq"] == ["seq"]
    finally:
        engine.dispose()
