"""Change feed: the transactional outbox and the polling watchers' positions and digests.

Revision ID: 0003_change_feed
Revises: 0002_contracts
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_change_feed"
down_revision = "0002_contracts"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("tenant_ref", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("payload", JSONDoc, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("relayed_at", TS),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_state_id", "outbox", ["state", "id"])
    op.create_index("ix_outbox_relayed_at", "outbox", ["relayed_at"])
    op.create_table(
        "watcher_positions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", JSONDoc),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "watcher_rows",
        sa.Column("watcher", sa.String(200), primary_key=True),
        sa.Column("row_key", sa.String(400), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("watched", JSONDoc, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watcher_rows")
    op.drop_table("watcher_positions")
    op.drop_index("ix_outbox_relayed_at", table_name="outbox")
    op.drop_index("ix_outbox_state_id", table_name="outbox")
    op.drop_table("outbox")
