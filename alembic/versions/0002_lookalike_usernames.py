"""Look-alike usernames: users.normalised_key (NFKC, case-folded), unique where set.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Every existing user gets domain.model.normalised_username_key of its name, computed
here (no database does NFKC), so that "ａｌｉｃｅ" can no longer be registered beside
"alice". Existing names that now look alike cannot all have the key, which is unique:
the first registered of each group (created_at, then id) gets it, the others keep
NULL. Nothing is renamed or deleted: each of them still logs in with its own spelling
(found by username_key, which stays unique), and a look-alike spelling finds the first.

The report, as warnings (on stderr under `courier migrate`): every group of names that
now look alike, and every existing name that the new rule would refuse (the Cyrillic
"аlice" does not look alike "alice" to NFKC: it mixes scripts). The key function is
the domain's, not a copy: the stored keys must be the ones the running code computes.
"""
import logging
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op
from domain import errors
from domain.model import USERNAME_KEY_MAX, normalised_username_key, validate_username

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("courier.migrate")

USERS = sa.table(
    "users",
    sa.column("id", sa.CHAR(36)),
    sa.column("username", sa.String(64)),
    sa.column("created_at", sa.DateTime()),
    sa.column("normalised_key", sa.String(128)),
)
UPDATE_BATCH = 1000


def upgrade() -> None:
    if context.is_offline_mode():
        raise RuntimeError("revision 0002 computes every user's normalised_key in Python: run it online, not --sql")
    op.add_column("users", sa.Column("normalised_key", sa.String(128), nullable=True))
    connection = op.get_bind()
    groups: dict[str, list[tuple[str, str]]] = {}  # normalised key -> (id, username), oldest first
    too_long, refused = [], []
    for user_id, username in connection.execute(
        sa.select(USERS.c.id, USERS.c.username).order_by(USERS.c.created_at, USERS.c.id)
    ):
        key = normalised_username_key(username)
        if len(key) > USERNAME_KEY_MAX:
            too_long.append((user_id, username))
        else:
            groups.setdefault(key, []).append((user_id, username))
        try:
            validate_username(username)
        except errors.InvalidUsername as refusal:
            refused.append((user_id, username, refusal.message))
    _store_keys(connection, [(members[0][0], key) for key, members in groups.items()])
    op.create_index("ix_users_normalised_key", "users", ["normalised_key"], unique=True)
    _report({key: members for key, members in groups.items() if len(members) > 1}, too_long, refused)


def downgrade() -> None:
    op.drop_index("ix_users_normalised_key", table_name="users")
    with op.batch_alter_table("users") as batch:  # SQLite: by copying the table
        batch.drop_column("normalised_key")


def _store_keys(connection, keys: list[tuple[str, str]]) -> None:
    statement = (
        sa.update(USERS)
        .where(USERS.c.id == sa.bindparam("user_id"))
        .values(normalised_key=sa.bindparam("key"))
    )
    for start in range(0, len(keys), UPDATE_BATCH):
        batch = keys[start:start + UPDATE_BATCH]
        connection.execute(statement, [{"user_id": user_id, "key": key} for user_id, key in batch])


def _report(collisions: dict[str, list[tuple[str, str]]], too_long: list, refused: list) -> None:
    if collisions:
        log.warning(
            "%d group(s) of existing usernames now look alike (the same NFKC case-folded name). Nothing was"
            " renamed or deleted: each account still logs in with its own spelling, and a look-alike spelling"
            " finds the first registered, listed first:", len(collisions))
        for key, members in collisions.items():
            log.warning("look alike as %s: %s", _shown(key),
                        ", ".join(f"{_shown(name)} (user {user_id})" for user_id, name in members))
    else:
        log.info("no existing usernames look alike")
    for user_id, name in too_long:
        log.warning("username %s (user %s) is longer than %d characters once normalised: it is found by its"
                    " own spelling only", _shown(name), user_id, USERNAME_KEY_MAX)
    for user_id, name, why in refused:
        log.warning("existing username %s (user %s) is kept, but new names like it are refused: %s",
                    _shown(name), user_id, why)


def _shown(name: str) -> str:
    """The name, and its code points where it is not ASCII: look-alikes look alike in a log too."""
    return repr(name) if name.isascii() else f"{name!r} ({ascii(name)[1:-1]})"
