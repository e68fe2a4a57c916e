"""messages fit a sharded MySQL: a conversation column leads the primary key, and no
foreign key reaches another shard's table.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

docs/design/mysql-sharding.md. `messages.conversation` is Message.conversation
("p:<pair_key>" or "g:<group_id>"), filled here from pair_key and group_id; it is the
shard key. conversation_seq becomes NOT NULL (every row has one since 0005).

MySQL/MariaDB: the primary key becomes (conversation, conversation_seq), InnoDB's
clustered index: a conversation's messages lie together in history order. `seq` keeps
its AUTO_INCREMENT (the embedded mode's global order, when it runs on one MySQL server)
under the unique key uq_messages_seq, made before the old primary key goes (InnoDB
wants an AUTO_INCREMENT column, and the columns a foreign key names - inbox_entries and
group_entries name messages.seq - indexed at every moment).

SQLite: the primary key stays `seq` (INTEGER PRIMARY KEY AUTOINCREMENT; AUTOINCREMENT
exists only there, and the embedded mode's inbox needs a seq never handed out twice).
Batch mode copies the table, keeping AUTOINCREMENT and the sequence's value.

Both: the foreign keys from messages to users (from_user_id, to_user_id) and to groups
(group_id) go: they join a table sharded by conversation to tables sharded by user and
by group. Users and groups are never deleted; the use cases look the recipient and the
group up before a send is accepted, and SqlMessageStore checks them again before it
stores a batch (what the foreign keys did). Their indexes stay.

Production: stop the workers of the older version before upgrading. They insert messages
without a conversation, which MySQL refuses once the column is NOT NULL. Gateways insert
no messages and may keep running. On MySQL the upgrade rewrites the table: on a large one,
run the same statements (`alembic upgrade 0014:0015 --sql`) through an online schema
change tool.
"""
from collections.abc import Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONVERSATION = sa.String(80)
FOREIGN_KEYS = {  # name: (column, referred table)
    "fk_messages_from_user_id_users": ("from_user_id", "users"),
    "fk_messages_to_user_id_users": ("to_user_id", "users"),
    "fk_messages_group_id_groups": ("group_id", "groups"),
}


def upgrade() -> None:
    op.add_column("messages", sa.Column("conversation", CONVERSATION, nullable=True))
    messages = sa.table("messages", sa.column("conversation", sa.String()), sa.column("pair_key", sa.String()),
                        sa.column("group_id", sa.String()))
    # "+" on strings: || on SQLite, concat() on MySQL.
    op.execute(sa.update(messages).values(conversation=sa.case(
        (messages.c.group_id.is_not(None), sa.literal("g:") + messages.c.group_id),
        else_=sa.literal("p:") + messages.c.pair_key)))
    if _mysql():
        for name in FOREIGN_KEYS:
            op.drop_constraint(name, "messages", type_="foreignkey")
        op.alter_column("messages", "conversation", existing_type=CONVERSATION, nullable=False)
        op.alter_column("messages", "conversation_seq", existing_type=sa.BigInteger(), nullable=False)
        op.execute("ALTER TABLE messages ADD CONSTRAINT uq_messages_seq UNIQUE (seq),"
                   " DROP PRIMARY KEY, ADD PRIMARY KEY (conversation, conversation_seq)")
        return
    with _copied_on_sqlite() as batch:
        for name in FOREIGN_KEYS:
            batch.drop_constraint(name, type_="foreignkey")
        batch.alter_column("conversation", existing_type=CONVERSATION, nullable=False)
        batch.alter_column("conversation_seq", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    if _mysql():
        op.execute("ALTER TABLE messages DROP PRIMARY KEY, ADD PRIMARY KEY (seq), DROP INDEX uq_messages_seq")
        op.alter_column("messages", "conversation_seq", existing_type=sa.BigInteger(), nullable=True)
        op.drop_column("messages", "conversation")
        for name, (column, referred) in FOREIGN_KEYS.items():
            op.create_foreign_key(name, "messages", referred, [column], ["id"])
        return
    with _copied_on_sqlite() as batch:
        batch.drop_column("conversation")
        batch.alter_column("conversation_seq", existing_type=sa.BigInteger(), nullable=True)
        for name, (column, referred) in FOREIGN_KEYS.items():
            batch.create_foreign_key(name, referred, [column], ["id"])


def _mysql() -> bool:
    return op.get_bind().dialect.name != "sqlite"


@contextmanager
def _copied_on_sqlite():
    """SQLite: batch mode copies the table; AUTOINCREMENT is kept, and so is the
    sequence's value (a seq deleted at the top is never handed out again)."""
    bind = op.get_bind()
    last = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").scalar()
    with op.batch_alter_table("messages", recreate="always", table_kwargs={"sqlite_autoincrement": True}) as batch:
        yield batch
    if last is not None:
        bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'messages'", (last,))
        if bind.exec_driver_sql("SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'messages'").scalar() == 0:
            bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)", (last,))
