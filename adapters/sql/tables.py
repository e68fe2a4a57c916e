"""The schema: SQLAlchemy Core tables, and the metadata alembic compares migrations with.

One schema for SQLite (embedded mode) and MySQL/MariaDB (production). Notes on choices:

- Autoincrement keys are BIGINT on MySQL but INTEGER on SQLite, where only
  "INTEGER PRIMARY KEY" is the rowid. messages and inbox_entries use SQLite's
  AUTOINCREMENT so a seq is never reused even after the newest rows are deleted:
  seqs are history paging keys and inbox cursors, which must only grow.
- MySQL tables are utf8mb4 (4-byte emoji) with the binary collation: ids,
  username keys and client message ids compare byte for byte, as in memory
  (a *_ci collation would make "É" equal "e" and an upper-case UUID match a
  lower-case one). Both mysql_* and mariadb_* options are given: a
  mariadb+pymysql URL selects the "mariadb" dialect, which ignores mysql_*.
- Every foreign key column leads some index, declared here: otherwise InnoDB
  creates one behind our back and the migrated schema no longer matches this file.
- Message times are integer Unix seconds (the contract's created_at); users and
  groups keep a microsecond DATETIME (UTC) so their creation order is kept.
"""
from __future__ import annotations

from sqlalchemy import (
    CHAR,
    DDL,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects import mysql

MYSQL_DIALECTS = ("mysql", "mariadb")

# Deterministic constraint names, so migrations (and SQLite batch mode) can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

SeqType = BigInteger().with_variant(Integer(), "sqlite")
IdType = CHAR(36)  # canonical UUID strings
TimestampType = DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)
# TEXT holds 64 KiB on MySQL: 16,000 bytes for 4,000 emoji fit, but the limit is
# configurable, so MEDIUMTEXT (16 MiB). SQLite TEXT has no such limit.
ContentType = Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)

MYSQL_TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}

users = Table(
    "users",
    metadata,
    Column("id", IdType, primary_key=True),
    Column("username", String(64), nullable=False),
    # domain.model.username_key (casefold) may lengthen a name: "ß" -> "ss".
    Column("username_key", String(128), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", TimestampType, nullable=False),
    # domain.model.normalised_username_key (NFKC, casefold): what the name looks like,
    # so "ａｌｉｃｅ" cannot be registered beside "alice". NULL for an account registered
    # before that rule whose name looks like an older one's (alembic revision 0002):
    # it keeps its name and is found by username_key alone; NULLs never collide.
    Column("normalised_key", String(128), nullable=True),
    # Whether the user's read markers go to the others as receipts (PATCH /users/me;
    # alembic revision 0010). Read per read marker, never cached: a change holds at once.
    Column("send_read_receipts", Boolean, nullable=False, server_default=text("1")),
    # Whether others see the user online and its last_seen (PATCH /users/me; revision 0011).
    Column("show_presence", Boolean, nullable=False, server_default=text("1")),
    UniqueConstraint("username_key"),
    # A unique index rather than a constraint: SQLite adds an index to an existing
    # table, but a constraint only by copying the table.
    Index(None, "normalised_key", unique=True),
    **MYSQL_TABLE_OPTIONS,
)

groups = Table(
    "groups",
    metadata,
    Column("id", IdType, primary_key=True),
    Column("name", String(100), nullable=False),
    # No foreign key to users (another shard; revision 0016): SqlGroupRepository checks.
    Column("owner_id", IdType, nullable=False),
    Column("created_at", TimestampType, nullable=False),
    # Large groups (docs/design/large-groups.md, section 2.2; revision 0012). "group" or
    # "channel" (only the owner posts; large from creation).
    Column("kind", String(16), nullable=False, server_default=text("'group'")),
    # Kept by every add and remove under the group row lock (adapters/sql/groups.py): the
    # count decides the switch to a stream, and the version orders the membership changes
    # that the streams apply (GroupStreams.apply: WAIT for an earlier one).
    Column("member_count", Integer, nullable=False, server_default=text("0")),
    Column("member_version", BigInteger, nullable=False, server_default=text("0")),
    Index(None, "owner_id"),
    **MYSQL_TABLE_OPTIONS,
)

# A group's stream, one row from the moment it became large (never switches back):
# immutable, the authority for the stream number (sno) that cursors name. AUTOINCREMENT on
# SQLite, so an sno is never handed out twice.
group_streams = Table(
    "group_streams",
    metadata,
    Column("stream_no", SeqType, primary_key=True, autoincrement=True),
    Column("group_id", IdType, ForeignKey("groups.id"), nullable=False),
    Column("large_at_version", BigInteger, nullable=False),  # groups.member_version at the switch
    UniqueConstraint("group_id"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)

# Invitations to a channel by its owner (design, section 9): joining by oneself needs one.
group_invitations = Table(
    "group_invitations",
    metadata,
    Column("group_id", IdType, ForeignKey("groups.id"), nullable=False),
    # No foreign keys to users (another shard; revision 0016): SqlGroupRepository checks.
    Column("user_id", IdType, nullable=False),
    Column("invited_by", IdType, nullable=False),
    Column("created_at", TimestampType, nullable=False),
    PrimaryKeyConstraint("group_id", "user_id"),
    Index(None, "user_id"),
    Index(None, "invited_by"),
    **MYSQL_TABLE_OPTIONS,
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", IdType, ForeignKey("groups.id"), nullable=False),
    # No foreign key to users (another shard; revision 0016): SqlGroupRepository checks.
    Column("user_id", IdType, nullable=False),
    # Join order within the group: members are listed in this order, and the
    # longest-standing one succeeds a leaving owner.
    Column("position", BigInteger, nullable=False),
    Column("joined_at", TimestampType, nullable=False),
    PrimaryKeyConstraint("group_id", "user_id"),
    # A member's groups, newest joined first, paged by (joined_at, group_id): GET /groups
    # reads one range of it.
    Index(None, "user_id", "joined_at", "group_id"),
    **MYSQL_TABLE_OPTIONS,
)

# Sharded by conversation (docs/design/mysql-sharding.md). The primary key differs by
# dialect (revision 0015), the one place where this file is not the whole schema:
# - SQLite: `seq`, INTEGER PRIMARY KEY AUTOINCREMENT: the embedded mode's single global
#   order (inbox_entries and group_entries point at it; SQLite's AUTOINCREMENT exists
#   only on the rowid). It is what is declared below.
# - MySQL/MariaDB: the clustered key (conversation, conversation_seq), so a
#   conversation's messages lie together in their history order; `seq` stays
#   AUTO_INCREMENT (the embedded mode may run on one MySQL server) under the unique key
#   uq_messages_seq. The after_create hook below makes create_all agree with the
#   migration; alembic's comparison does not look at primary keys, and
#   tests/integration/test_mysql_sharding.py checks this one on a migrated MariaDB.
# No foreign key to users or groups (other shards): SqlMessageStore checks that the
# sender, the recipient and the group exist before it stores a batch.
messages = Table(
    "messages",
    metadata,
    # The order of acceptance over all conversations (the persister's acceptance_order,
    # or insertion order): the embedded inbox's entries point at it.
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", IdType, nullable=False),
    Column("type", String(16), nullable=False),
    Column("from_user_id", IdType, nullable=False),
    Column("to_user_id", IdType, nullable=True),
    Column("group_id", IdType, nullable=True),
    # Message.conversation ("p:<pair_key>" or "g:<group_id>"): the shard key, and the
    # first column of MySQL's primary key (revision 0015).
    Column("conversation", String(80), nullable=False),
    # Private messages only: the two user ids sorted and joined by ":", so one
    # index serves a conversation in both directions (see messages.pair_key).
    Column("pair_key", String(73), nullable=True),
    Column("content", ContentType, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("client_msg_id", String(128), nullable=True),
    # Message.seq: the message's place in its conversation (a private pair, or a
    # group), 1, 2, 3... in the order of acceptance; history is in this order. Given
    # by the inbox (deliver.lua's counter in production, SqliteInbox in the same
    # transaction in embedded mode). Every row has one since revision 0005, which
    # numbered the older ones; NOT NULL since revision 0015 (part of MySQL's primary key).
    Column("conversation_seq", BigInteger, nullable=False),
    # Unix seconds of the last edit, and of the deletion (the content is emptied then).
    Column("edited_at", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    UniqueConstraint("id"),
    # NULLs never collide, so messages without a client_msg_id are unconstrained.
    UniqueConstraint("from_user_id", "client_msg_id"),
    # One seq per message in each conversation: a private message has no group_id and
    # a group message no pair_key, so each key guards its kind alone. (Unique indexes
    # rather than constraints: SQLite adds an index to an existing table, not a constraint.)
    Index(None, "pair_key", "conversation_seq", unique=True),
    Index(None, "group_id", "conversation_seq", unique=True),
    Index(None, "to_user_id"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)
# MySQL's keys of messages (above): revision 0015 makes them in a migrated database,
# this makes them in one made by metadata.create_all.
MYSQL_MESSAGES_KEYS = (
    "ALTER TABLE messages ADD CONSTRAINT uq_messages_seq UNIQUE (seq),"
    " DROP PRIMARY KEY, ADD PRIMARY KEY (conversation, conversation_seq)"
)
event.listen(messages, "after_create", DDL(MYSQL_MESSAGES_KEYS).execute_if(dialect=MYSQL_DIALECTS))
# Indexes a MySQL database has and this metadata does not declare (SQLite would get a
# useless second index on its rowid): alembic's comparison passes over them
# (include_object, in alembic/env.py and the migration tests).
MYSQL_ONLY_INDEXES = frozenset({"uq_messages_seq"})


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """alembic's include_object: everything but the MySQL-only indexes found in a database."""
    return not (type_ in ("index", "unique_constraint") and reflected and compare_to is None
                and name in MYSQL_ONLY_INDEXES)

# The embedded mode's inbox streams (adapters/sql/inbox.py) ------------------

inbox_entries = Table(
    "inbox_entries",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),  # the cursor "<seq>-0"
    Column("user_id", IdType, ForeignKey("users.id"), nullable=False),
    # A message's entry names its row; any other event (a group change) holds its record.
    Column("message_seq", SeqType, ForeignKey("messages.seq"), nullable=True),
    Column("event", Text, nullable=True),
    Index(None, "user_id", "seq"),
    Index(None, "message_seq"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)

inbox_trims = Table(
    "inbox_trims",
    metadata,
    Column("user_id", IdType, ForeignKey("users.id"), primary_key=True),
    # The seq of the newest entry trimmed away: a cursor before it has lost entries.
    Column("trimmed_up_to", SeqType, nullable=False),
    **MYSQL_TABLE_OPTIONS,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("sender_id", IdType, ForeignKey("users.id"), nullable=False),
    Column("client_msg_id", String(128), nullable=False),
    Column("message_id", IdType, nullable=False),
    # The original message as Message.to_record() JSON: a retry gets it back identical.
    Column("record", ContentType, nullable=False),
    # False while the send that remembered it is still delivering it (pending): a
    # retry must not be told it was sent. Pending rows older than a short TTL are
    # taken over by a retry (adapters/sql/idempotency.py).
    Column("delivered", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("sender_id", "client_msg_id"),
    Index(None, "created_at"),
    **MYSQL_TABLE_OPTIONS,
)

# Logging out (adapters/sql/revocations.py; production keeps these in Redis) -------

revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    # Unix seconds: the token expires then, and its revocation may be forgotten.
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "expires_at"),
    **MYSQL_TABLE_OPTIONS,
)

# Logging out everywhere: every token of the user issued before issued_before_ms.
# No foreign key: the revocation of a user being removed must outlive the user's row.
token_floors = Table(
    "token_floors",
    metadata,
    Column("user_id", IdType, primary_key=True),
    Column("issued_before_ms", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # the last token it refuses expires then
    Index(None, "expires_at"),
    **MYSQL_TABLE_OPTIONS,
)

# Changes whose events are not yet in their recipients' logs (an outbox): group changes,
# message edits and deletions, read markers (the name is the first kind's). Written with
# the change, deleted once the event is appended (adapters/sql/outbox.py).
group_announcements = Table(
    "group_announcements",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),  # the order the changes were made
    Column("event_id", IdType, nullable=False),
    Column("record", Text, nullable=False),  # the event's record (JSON; domain.events.Appended)
    Column("recipient_ids", ContentType, nullable=False),  # JSON list of user ids
    Column("created_at", BigInteger, nullable=False),  # Unix seconds: when the change was made
    # What the change does to a large group's stream (JSON; adapters/sql/stream_changes.py),
    # NULL for every other change. MEDIUMTEXT on MySQL: a channel's switch lists its members.
    Column("stream_change", ContentType, nullable=True),
    UniqueConstraint("event_id"),
    Index(None, "created_at"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)

# Every edit and deletion of a message, by message id (the latest one): applied to
# `messages` with it, and by the persister when it inserts a message after its change
# was stored (production: the persister lags behind the sends).
message_changes = Table(
    "message_changes",
    metadata,
    Column("message_id", IdType, primary_key=True),
    Column("content", ContentType, nullable=False),  # "" once deleted
    Column("edited_at", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    **MYSQL_TABLE_OPTIONS,
)

# Group change events already appended to the logs of the embedded mode (SqliteInbox),
# so that a relayed event is never appended twice; forgotten after a week.
appended_events = Table(
    "appended_events",
    metadata,
    Column("event_id", IdType, primary_key=True),
    Column("appended_at", BigInteger, nullable=False),  # Unix seconds
    Index(None, "appended_at"),
    **MYSQL_TABLE_OPTIONS,
)

# The conversation list and read markers (adapters/sql/conversations.py): kept up to date
# as messages are stored (SqliteInbox in its transaction; SqlMessageStore.save, the
# worker's, in its own) and as groups change (SqlGroupRepository), so that a page of the
# list costs O(page). `activity` orders the list: microseconds since the epoch (a
# message's: when it was accepted), never moved back.
ConversationKey = String(80)  # domain.model.Message.conversation: "p:<id>:<id>" or "g:<id>"

conversations = Table(
    "conversations",
    metadata,
    Column("conversation", ConversationKey, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),  # the highest Message.seq stored; 0: none yet
    Column("last_message_id", IdType, nullable=True),  # that message's id
    Column("activity", BigInteger, nullable=False),
    **MYSQL_TABLE_OPTIONS,
)

conversation_members = Table(
    "conversation_members",
    metadata,
    Column("user_id", IdType, ForeignKey("users.id"), nullable=False),
    Column("conversation", ConversationKey, nullable=False),
    Column("peer_id", IdType, nullable=True),  # private: the other user (oneself for notes to self)
    Column("group_id", IdType, nullable=True),  # group: the group's id
    # The member's read marker: every message of the conversation up to it is read, and
    # one's own sends move it to themselves, so unread = last_seq - read_seq (when above 0).
    Column("read_seq", BigInteger, nullable=False),
    Column("activity", BigInteger, nullable=False),  # a copy of the conversation's, or the join time
    # A large group's row keeps its join activity: no write per message per member (design, section 10).
    Column("large", Boolean, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("user_id", "conversation"),
    # A user's list, most recent first, paged by (activity, conversation).
    Index(None, "user_id", "activity", "conversation"),
    Index(None, "conversation"),
    Index(None, "user_id", "large"),  # a user's large groups, merged into its list by their own activity
    **MYSQL_TABLE_OPTIONS,
)

# The embedded mode's group streams (adapters/sql/group_streams.py; design, section 8).
# One schema: MySQL has these tables too, but production keeps the streams in Redis.

# A large group's stream: a message's entry names its row, a change record is in `event`,
# and the switch's marker (the floor) has neither. `seq` is the position "<seq>-0", taken
# from the same counter as inbox_entries.seq (SqliteGroupStreams), so the own logs and the
# streams merge in the order they were written.
group_entries = Table(
    "group_entries",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("group_id", IdType, ForeignKey("groups.id"), nullable=False),
    Column("message_seq", SeqType, ForeignKey("messages.seq"), nullable=True),
    Column("event", Text, nullable=True),
    Index(None, "group_id", "seq"),
    Index(None, "message_seq"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_OPTIONS,
)

group_entry_trims = Table(
    "group_entry_trims",
    metadata,
    Column("group_id", IdType, ForeignKey("groups.id"), primary_key=True),
    Column("trimmed_up_to", SeqType, nullable=False),  # the seq of the newest entry trimmed away
    **MYSQL_TABLE_OPTIONS,
)

# A member's intervals (joined_after, left_at] in a group's stream, as seqs; left_at NULL
# while the interval is open. No foreign key on user_id: the stream's record of a user
# outlives nothing it needs from users.
group_intervals = Table(
    "group_intervals",
    metadata,
    Column("group_id", IdType, ForeignKey("groups.id"), nullable=False),
    Column("user_id", IdType, nullable=False),
    Column("joined_after", SeqType, nullable=False),
    Column("left_at", SeqType, nullable=True),
    PrimaryKeyConstraint("group_id", "user_id", "joined_after"),
    Index(None, "user_id"),  # a user's large groups (production: lgm:<U>)
    **MYSQL_TABLE_OPTIONS,
)

# Where each change of a large group's membership was applied to its stream, by member
# version (the switch at groups' version then, its position the floor): the highest
# version is the one applied last (production: lg:{G}'s mv), and the event id answers a
# relay with the change's place (production: lg:{G}:done:<event>).
group_stream_changes = Table(
    "group_stream_changes",
    metadata,
    Column("group_id", IdType, ForeignKey("groups.id"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("event_id", IdType, nullable=False),
    Column("position", SeqType, nullable=False),
    PrimaryKeyConstraint("group_id", "version"),
    UniqueConstraint("event_id"),
    **MYSQL_TABLE_OPTIONS,
)

# Checkpoints of cursors (design, section 3.4): a user's positions by sno, "<sno>=<ms>-<n>,...".
cursor_checkpoints = Table(
    "cursor_checkpoints",
    metadata,
    Column("user_id", IdType, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("vector", ContentType, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # Unix seconds: kept for the TTL after it
    PrimaryKeyConstraint("user_id", "id"),
    Index(None, "created_at"),
    **MYSQL_TABLE_OPTIONS,
)
