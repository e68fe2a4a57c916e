"""The event log: an inbox entry may hold an event that is not a message (a group change).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

inbox_entries.message_seq becomes nullable and inbox_entries.event (the event's JSON
record) is added: a message's entry still names its row in `messages`; a group
change (member_added, member_removed, group_updated) has no such row, and its entry
holds its record. Existing entries are all messages' and stay as they are. SQLite
cannot change a column's nullability in place: batch mode copies the table, keeping
AUTOINCREMENT and the sequence's value (cursors are entry seqs: they only ever grow).
"""
from collections.abc import Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with _copied_on_sqlite() as batch:
        batch.alter_column("message_seq", existing_type=SEQ, nullable=True)
        batch.add_column(sa.Column("event", sa.Text(), nullable=True))


def downgrade() -> None:
    # Entries that are not messages' have no place in the older schema.
    op.execute("DELETE FROM inbox_entries WHERE message_seq IS NULL")
    with _copied_on_sqlite() as batch:
        batch.drop_column("event")
        batch.alter_column("message_seq", existing_type=SEQ, nullable=False)


@contextmanager
def _copied_on_sqlite():
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    last = None
    if sqlite:
        last = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'inbox_entries'").scalar()
    with op.batch_alter_table("inbox_entries", table_kwargs={"sqlite_autoincrement": True}) as batch:
        yield batch
    if sqlite and last is not None:
        bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'inbox_entries'", (last,))
        if bind.exec_driver_sql("SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'inbox_entries'").scalar() == 0:
            bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('inbox_entries', ?)", (last,))
