"""Large groups and channels: groups.kind, member_count, member_version; group_streams,
group_invitations, conversation_members.large; the embedded mode's group_entries,
group_entry_trims, group_intervals, cursor_checkpoints.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

docs/design/large-groups.md, section 2.2. Every existing group is a "group" (not a
channel), small (no group_streams row) and at member version 0; its member_count is
counted from group_members here, once. The embedded-only tables start empty: no group is
large yet. SQLite drops columns by copying the table (batch mode).
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
ID = sa.CHAR(36)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(sa.dialects.mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)
CONTENT = sa.Text().with_variant(sa.dialects.mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)
TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.add_column("groups", sa.Column("kind", sa.String(16), nullable=False, server_default=sa.text("'group'")))
    op.add_column("groups", sa.Column("member_count", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.add_column("groups", sa.Column("member_version", sa.BigInteger(), nullable=False,
                                      server_default=sa.text("0")))
    groups = sa.table("groups", sa.column("id"), sa.column("member_count"))
    members = sa.table("group_members", sa.column("group_id"), sa.column("user_id"))
    counted = (sa.select(sa.func.count()).select_from(members).where(members.c.group_id == groups.c.id)
               .scalar_subquery())
    op.execute(sa.update(groups).values(member_count=counted))
    op.add_column("conversation_members", sa.Column("large", sa.Boolean(), nullable=False,
                                                    server_default=sa.text("0")))

    op.create_table(
        "group_streams",
        sa.Column("stream_no", SEQ, autoincrement=True, nullable=False),
        sa.Column("group_id", ID, nullable=False),
        sa.Column("large_at_version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_streams_group_id_groups"),
        sa.PrimaryKeyConstraint("stream_no", name="pk_group_streams"),
        sa.UniqueConstraint("group_id", name="uq_group_streams_group_id"),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_table(
        "group_invitations",
        sa.Column("group_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("invited_by", ID, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_invitations_group_id_groups"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_group_invitations_user_id_users"),
        sa.ForeignKeyConstraint(["invited_by"], ["users.id"], name="fk_group_invitations_invited_by_users"),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_group_invitations"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_group_invitations_user_id", "group_invitations", ["user_id"])
    op.create_index("ix_group_invitations_invited_by", "group_invitations", ["invited_by"])

    # Embedded only (adapters/sql/group_streams.py, checkpoints.py).
    op.create_table(
        "group_entries",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("group_id", ID, nullable=False),
        sa.Column("message_seq", SEQ, nullable=True),
        sa.Column("event", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_entries_group_id_groups"),
        sa.ForeignKeyConstraint(["message_seq"], ["messages.seq"], name="fk_group_entries_message_seq_messages"),
        sa.PrimaryKeyConstraint("seq", name="pk_group_entries"),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_index("ix_group_entries_group_id_seq", "group_entries", ["group_id", "seq"])
    op.create_index("ix_group_entries_message_seq", "group_entries", ["message_seq"])
    op.create_table(
        "group_entry_trims",
        sa.Column("group_id", ID, nullable=False),
        sa.Column("trimmed_up_to", SEQ, nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_entry_trims_group_id_groups"),
        sa.PrimaryKeyConstraint("group_id", name="pk_group_entry_trims"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "group_intervals",
        sa.Column("group_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("joined_after", SEQ, nullable=False),
        sa.Column("left_at", SEQ, nullable=True),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_intervals_group_id_groups"),
        sa.PrimaryKeyConstraint("group_id", "user_id", "joined_after", name="pk_group_intervals"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_group_intervals_user_id", "group_intervals", ["user_id"])
    op.create_table(
        "group_stream_changes",
        sa.Column("group_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("position", SEQ, nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_group_stream_changes_group_id_groups"),
        sa.PrimaryKeyConstraint("group_id", "version", name="pk_group_stream_changes"),
        sa.UniqueConstraint("event_id", name="uq_group_stream_changes_event_id"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "cursor_checkpoints",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("vector", CONTENT, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "id", name="pk_cursor_checkpoints"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_cursor_checkpoints_created_at", "cursor_checkpoints", ["created_at"])


def downgrade() -> None:
    # The large groups' streams have no place in the older schema: what was posted to
    # them stays in `messages` (history), their members in group_members. (A table's
    # indexes go with it: MySQL refuses to drop one that a foreign key needs first.)
    op.drop_table("cursor_checkpoints")
    op.drop_table("group_stream_changes")
    op.drop_table("group_intervals")
    op.drop_table("group_entry_trims")
    op.drop_table("group_entries")
    op.drop_table("group_invitations")
    op.drop_table("group_streams")
    with op.batch_alter_table("conversation_members") as batch:  # SQLite: by copying the table
        batch.drop_column("large")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("member_version")
        batch.drop_column("member_count")
        batch.drop_column("kind")
