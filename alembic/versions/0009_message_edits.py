"""Edit and delete: messages.edited_at and deleted_at, and message_changes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10

message_changes keeps the latest edit or deletion of each message, so that the
persister applies it to a message it inserts after the change was made (production:
the persister lags behind the sends; application/edits.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
ID = sa.CHAR(36)
CONTENT = sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)
TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.add_column("messages", sa.Column("edited_at", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("deleted_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "message_changes",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("content", CONTENT, nullable=False),
        sa.Column("edited_at", sa.BigInteger(), nullable=True),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name="pk_message_changes"),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("message_changes")
    op.drop_column("messages", "deleted_at")
    op.drop_column("messages", "edited_at")
