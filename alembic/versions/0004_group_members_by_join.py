"""A member's groups by when they joined: index group_members (user_id, joined_at, group_id).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

GET /groups pages a user's groups newest joined first, keyed by (joined_at, group_id):
with this index a page is one range scan, however many groups the user is in. It
replaces the index on user_id alone, whose work it does (it also leads with user_id,
so MySQL's foreign key on user_id uses it). Created before the old one is dropped:
MySQL refuses to drop the only index a foreign key can use.
"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = "ix_group_members_user_id_joined_at_group_id"
OLD = "ix_group_members_user_id"


def upgrade() -> None:
    op.create_index(NEW, "group_members", ["user_id", "joined_at", "group_id"])
    op.drop_index(OLD, table_name="group_members")


def downgrade() -> None:
    op.create_index(OLD, "group_members", ["user_id"])
    op.drop_index(NEW, table_name="group_members")
