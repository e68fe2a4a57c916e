"""Every message gets its seq: its place in its conversation (messages.conversation_seq).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

A conversation is a private pair (pair_key) or a group (group_id). The messages stored
so far are numbered 1, 2, 3... per conversation in their stored order (messages.seq,
the order of acceptance), which is the order their history was shown in. History is
now paged by this seq, and unique keys (pair_key, conversation_seq) and (group_id,
conversation_seq) guard it; they replace the indexes on (pair_key, seq) and (group_id,
seq), whose work they do (the one leading with group_id also serves its foreign key,
so it is created before the old one is dropped: MySQL refuses to drop the only index
a foreign key can use).

The column stays nullable: SQLite cannot make an existing column NOT NULL without
copying the table. Courier stores no message without a seq from here on.

Production: stop the gateways of the older version and let `courier worker` empty
stream:persist before upgrading: a message those gateways queued carries no seq, and
the persister numbers it after the highest seq stored, which an upgraded gateway may
have handed out meanwhile (the persister numbers it anew then, with a warning).
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = {"ix_messages_pair_key_conversation_seq": "pair_key", "ix_messages_group_id_conversation_seq": "group_id"}
OLD = {"ix_messages_pair_key_seq": "pair_key", "ix_messages_group_id_seq": "group_id"}

# Both dialects have window functions (MariaDB 10.2, SQLite 3.25) and an UPDATE that
# reads another table (a multi-table UPDATE; SQLite 3.33's UPDATE ... FROM). A NULL
# pair_key (a group message) or group_id (a private one) partitions like any value.
NUMBERED = (
    "SELECT seq AS numbered_seq,"
    " ROW_NUMBER() OVER (PARTITION BY pair_key, group_id ORDER BY seq) AS n FROM messages"
)
BACKFILL = {
    "mysql": f"UPDATE messages JOIN ({NUMBERED}) AS numbered ON numbered.numbered_seq = messages.seq"
             " SET messages.conversation_seq = numbered.n",
    "sqlite": f"UPDATE messages SET conversation_seq = numbered.n FROM ({NUMBERED}) AS numbered"
              " WHERE numbered.numbered_seq = messages.seq",
}


def upgrade() -> None:
    op.add_column("messages", sa.Column("conversation_seq", sa.BigInteger(), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(BACKFILL["sqlite" if dialect == "sqlite" else "mysql"])
    for name, column in NEW.items():
        op.create_index(name, "messages", [column, "conversation_seq"], unique=True)
    for name in OLD:
        op.drop_index(name, table_name="messages")


def downgrade() -> None:
    for name, column in OLD.items():
        op.create_index(name, "messages", [column, "seq"])
    for name in NEW:
        op.drop_index(name, table_name="messages")
    op.drop_column("messages", "conversation_seq")
