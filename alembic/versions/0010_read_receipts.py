"""Read receipts: users.send_read_receipts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-11

Whether a user's read markers go to the other participants as receipts (PATCH
/api/v1/users/me {"send_read_receipts"}); every existing user sends them.
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("send_read_receipts", sa.Boolean(), nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:  # SQLite: by copying the table
        batch.drop_column("send_read_receipts")
