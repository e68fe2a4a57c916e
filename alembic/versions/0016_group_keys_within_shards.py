"""No foreign key from the group tables to users: they lie on other shards.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

docs/design/mysql-sharding.md. groups, group_members and group_invitations are sharded
by group, users by user: the foreign keys groups.owner_id, group_members.user_id,
group_invitations.user_id and group_invitations.invited_by -> users.id would join two
shards. Users are never deleted; the use cases look a user up before it is added,
invited or made the owner, and SqlGroupRepository checks again in its transaction
(UserNotFound, what the foreign keys' refusal was turned into). The foreign keys within
one group (-> groups.id) stay, and so do the indexes (GET /groups reads one of them).
SQLite copies the three tables (batch mode).
"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = {  # table: {name: column}, every one to users.id
    "groups": {"fk_groups_owner_id_users": "owner_id"},
    "group_members": {"fk_group_members_user_id_users": "user_id"},
    "group_invitations": {"fk_group_invitations_user_id_users": "user_id",
                          "fk_group_invitations_invited_by_users": "invited_by"},
}


def upgrade() -> None:
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table) as batch:  # SQLite: by copying the table
            for name in keys:
                batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name, column in keys.items():
                batch.create_foreign_key(name, "users", [column], ["id"])
