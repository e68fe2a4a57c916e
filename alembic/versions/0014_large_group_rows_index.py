"""An index for a user's large-group rows: conversation_members (user_id, large).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

docs/design/large-groups.md, section 10: a large group's member rows keep their join
activity, and the conversation list reads a user's large-group rows beside its index range
of ordinary ones; this index finds them without reading every row of the user.
"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversation_members_user_id_large", "conversation_members", ["user_id", "large"])


def downgrade() -> None:
    op.drop_index("ix_conversation_members_user_id_large", table_name="conversation_members")
