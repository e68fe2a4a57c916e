"""Group change events exactly once: the outbox of announcements, and the appended ids.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

group_announcements holds a group change's event (its record and recipients) from the
change's own transaction until the event is in the recipients' logs
(application/group_events.py); appended_events remembers, for the embedded mode's logs,
which group change ids were appended, so that a relayed one is not appended twice.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
ID = sa.CHAR(36)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CONTENT = sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)
TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "group_announcements",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("recipient_ids", CONTENT, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_group_announcements"),
        sa.UniqueConstraint("event_id", name="uq_group_announcements_event_id"),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_index("ix_group_announcements_created_at", "group_announcements", ["created_at"])
    op.create_table(
        "appended_events",
        sa.Column("event_id", ID, nullable=False),
        sa.Column("appended_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_appended_events"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_appended_events_appended_at", "appended_events", ["appended_at"])


def downgrade() -> None:
    op.drop_table("appended_events")
    op.drop_table("group_announcements")
