"""Logging out: revoked tokens, and per-user floors of token issue times (logging out
everywhere). Used by the embedded mode; production keeps them in Redis.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
ID = sa.CHAR(36)
TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in MYSQL_DIALECTS
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("token_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name="pk_revoked_tokens"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    op.create_table(
        "token_floors",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("issued_before_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_token_floors"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_token_floors_expires_at", "token_floors", ["expires_at"])


def downgrade() -> None:
    op.drop_table("token_floors")
    op.drop_table("revoked_tokens")
