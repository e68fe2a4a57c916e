"""Initial schema: users, groups, members, messages, and the embedded inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Types and table options are spelled out here (not imported from tables.py), so
this revision keeps meaning what it meant when tables.py moves on.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.CHAR(36)
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)
CONTENT = sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)
# utf8mb4 for 4-byte emoji, binary collation for byte-for-byte comparison;
# mariadb_* as well: a mariadb:// URL ignores the mysql_* options.
TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("username_key", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username_key", name="uq_users_username_key"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "groups",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_groups_owner_id_users"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_groups_owner_id", "groups", ["owner_id"])
    op.create_table(
        "group_members",
        sa.Column("group_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_group_members"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_members_group_id_groups"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_group_members_user_id_users"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id"])
    op.create_table(
        "messages",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("from_user_id", ID, nullable=False),
        sa.Column("to_user_id", ID, nullable=True),
        sa.Column("group_id", ID, nullable=True),
        sa.Column("pair_key", sa.String(73), nullable=True),
        sa.Column("content", CONTENT, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("client_msg_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_messages"),
        sa.UniqueConstraint("id", name="uq_messages_id"),
        sa.UniqueConstraint("from_user_id", "client_msg_id", name="uq_messages_from_user_id_client_msg_id"),
        sa.ForeignKeyConstraint(["from_user_id"], ["users.id"], name="fk_messages_from_user_id_users"),
        sa.ForeignKeyConstraint(["to_user_id"], ["users.id"], name="fk_messages_to_user_id_users"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_messages_group_id_groups"),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_index("ix_messages_pair_key_seq", "messages", ["pair_key", "seq"])
    op.create_index("ix_messages_group_id_seq", "messages", ["group_id", "seq"])
    op.create_index("ix_messages_to_user_id", "messages", ["to_user_id"])
    op.create_table(
        "inbox_entries",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("message_seq", SEQ, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_inbox_entries"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_inbox_entries_user_id_users"),
        sa.ForeignKeyConstraint(["message_seq"], ["messages.seq"], name="fk_inbox_entries_message_seq_messages"),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_index("ix_inbox_entries_user_id_seq", "inbox_entries", ["user_id", "seq"])
    op.create_index("ix_inbox_entries_message_seq", "inbox_entries", ["message_seq"])
    op.create_table(
        "inbox_trims",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("trimmed_up_to", SEQ, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_inbox_trims"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_inbox_trims_user_id_users"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("sender_id", ID, nullable=False),
        sa.Column("client_msg_id", sa.String(128), nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("record", CONTENT, nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", "client_msg_id", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["sender_id"], ["users.id"], name="fk_idempotency_keys_sender_id_users"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping an index a foreign key uses
    # first would fail on MySQL. Children before parents.
    for table in ("idempotency_keys", "inbox_trims", "inbox_entries", "messages", "group_members", "groups", "users"):
        op.drop_table(table)
