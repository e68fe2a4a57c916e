"""The conversation list and read markers: conversations and conversation_members.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Kept up to date as messages are stored and groups change (adapters/sql/conversations.py).
The upgrade fills them from what is stored already: every group with its members, and
every conversation with messages, its last message, and each participant's marker at
the last message (nothing stored before counts as unread).
"""
from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
ID = sa.CHAR(36)
KEY = sa.String(80)
TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("conversation", KEY, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_message_id", ID, nullable=True),
        sa.Column("activity", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation", name="pk_conversations"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "conversation_members",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("conversation", KEY, nullable=False),
        sa.Column("peer_id", ID, nullable=True),
        sa.Column("group_id", ID, nullable=True),
        sa.Column("read_seq", sa.BigInteger(), nullable=False),
        sa.Column("activity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_conversation_members_user_id_users"),
        sa.PrimaryKeyConstraint("user_id", "conversation", name="pk_conversation_members"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_conversation_members_user_id_activity_conversation", "conversation_members",
                    ["user_id", "activity", "conversation"])
    op.create_index("ix_conversation_members_conversation", "conversation_members", ["conversation"])
    _fill()


def _fill() -> None:
    """What is stored already, a conversation at a time (run once, offline)."""
    conn = op.get_bind()
    conversations = sa.table("conversations", *(sa.column(n) for n in (
        "conversation", "last_seq", "last_message_id", "activity")))
    members = sa.table("conversation_members", *(sa.column(n) for n in (
        "user_id", "conversation", "peer_id", "group_id", "read_seq", "activity")))

    def last_of(condition: str, key: str):
        return conn.execute(sa.text(
            f"SELECT conversation_seq, id, created_at FROM messages WHERE {condition} = :key "
            "AND conversation_seq IS NOT NULL ORDER BY conversation_seq DESC LIMIT 1"), {"key": key}).first()

    group_rows = conn.execute(sa.text("SELECT id, created_at FROM `groups`" if conn.dialect.name != "sqlite"
                                      else 'SELECT id, created_at FROM "groups"')).all()
    for group_id, created_at in group_rows:
        last = last_of("group_id", group_id)
        if last is not None:
            activity = int(last.created_at) * 1_000_000
        else:
            created = created_at if not isinstance(created_at, str) else datetime.fromisoformat(created_at)
            activity = int(created.replace(tzinfo=timezone.utc).timestamp() * 1_000_000)
        seq = last.conversation_seq if last is not None else 0
        conn.execute(sa.insert(conversations).values(conversation="g:" + group_id, last_seq=seq,
                                                     last_message_id=last.id if last else None, activity=activity))
        users = conn.execute(sa.text("SELECT user_id FROM group_members WHERE group_id = :g"), {"g": group_id})
        rows = [{"user_id": u, "conversation": "g:" + group_id, "peer_id": None, "group_id": group_id,
                 "read_seq": seq, "activity": activity} for (u,) in users]
        if rows:
            conn.execute(sa.insert(members), rows)
    pairs = conn.execute(sa.text("SELECT DISTINCT pair_key FROM messages WHERE pair_key IS NOT NULL")).scalars()
    for pair in list(pairs):
        last = last_of("pair_key", pair)
        if last is None:
            continue
        activity = int(last.created_at) * 1_000_000
        conn.execute(sa.insert(conversations).values(conversation="p:" + pair, last_seq=last.conversation_seq,
                                                     last_message_id=last.id, activity=activity))
        low, _, high = pair.partition(":")
        conn.execute(sa.insert(members), [
            {"user_id": user_id, "conversation": "p:" + pair, "peer_id": peer_id, "group_id": None,
             "read_seq": last.conversation_seq, "activity": activity}
            for user_id, peer_id in dict([(low, high), (high, low)]).items()
        ])


def downgrade() -> None:
    op.drop_index("ix_conversation_members_conversation", table_name="conversation_members")
    op.drop_index("ix_conversation_members_user_id_activity_conversation", table_name="conversation_members")
    op.drop_table("conversation_members")
    op.drop_table("conversations")
