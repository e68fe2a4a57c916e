"""Presence: users.show_presence.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Whether others see a user online and when it was last seen (PATCH /api/v1/users/me
{"show_presence"}); every existing user shows it.
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("show_presence", sa.Boolean(), nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:  # SQLite: by copying the table
        batch.drop_column("show_presence")
