"""The outbox keeps a change's stream change: group_announcements.stream_change.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

docs/design/large-groups.md, sections 4.2 and 4.3: what a change does to a large group's
stream (a switch, or a member change at its version), as SQL decided it in the change's
transaction, so that the relay applies the same one as the announcer
(adapters/sql/stream_changes.py writes it as JSON). NULL for every other change, and for
every announcement stored before. MEDIUMTEXT on MySQL, like recipient_ids: a channel's
switch lists up to 10,000 members, past TEXT's 64 KB.

SQLite drops the column by copying the table (batch mode), keeping its AUTOINCREMENT and
its counter, as 0006 does for inbox_entries: seq is the order the changes were made.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_DIALECTS = ("mysql", "mariadb")
CONTENT = sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)


def upgrade() -> None:
    op.add_column("group_announcements", sa.Column("stream_change", CONTENT, nullable=True))


def downgrade() -> None:
    # An announcement stored with a stream change keeps its event and recipients: the
    # older version's relay appends the event, as it did before.
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    counter = "SELECT seq FROM sqlite_sequence WHERE name = 'group_announcements'"
    last = bind.exec_driver_sql(counter).scalar() if sqlite else None
    with op.batch_alter_table("group_announcements", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("stream_change")
    if last is not None:  # the copy's counter is its highest seq: not below the one handed out last
        if bind.exec_driver_sql(counter).scalar() is None:
            bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('group_announcements', ?)", (last,))
        else:
            bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'group_announcements'",
                                 (last,))
