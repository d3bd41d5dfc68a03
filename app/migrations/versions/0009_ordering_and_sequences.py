"""Ordered delivery per key and per-entity sequence numbers: an endpoint's ``ordering``,
an event's ``ordering_key`` and ``sequence``, a delivery's ``ordering_key``, ``position``
and ``blocked``, the ``ordering_sequences`` counters, and two partial indexes (the
unfinished deliveries of each ordered key; the blocked ones).

Revision ID: 0009_ordering_and_sequences
Revises: 0008_attempts_started_at_index
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_ordering_and_sequences"
down_revision = "0008_attempts_started_at_index"
branch_labels = None
depends_on = None

UNFINISHED_ORDERED = sa.text(
    "ordering_key IS NOT NULL AND state IN ('pending', 'in_flight', 'retry_scheduled')")


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("ordering", sa.String(10), nullable=False,
                                   server_default="none"))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("ordering_key", sa.String(200)))
        batch.add_column(sa.Column("sequence", sa.BigInteger()))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("ordering_key", sa.String(200)))
        batch.add_column(sa.Column("position", sa.BigInteger()))
        batch.add_column(sa.Column("blocked", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_index("ix_deliveries_ordering", "deliveries",
                    ["endpoint_id", "ordering_key", "position"],
                    postgresql_where=UNFINISHED_ORDERED, sqlite_where=UNFINISHED_ORDERED)
    op.create_index("ix_deliveries_blocked", "deliveries", ["endpoint_id"],
                    postgresql_where=sa.text("blocked"), sqlite_where=sa.text("blocked"))
    op.create_table(
        "ordering_sequences",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("ordering_key", sa.String(200), primary_key=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ordering_sequences")
    op.drop_index("ix_deliveries_blocked", table_name="deliveries")
    op.drop_index("ix_deliveries_ordering", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("blocked")
        batch.drop_column("position")
        batch.drop_column("ordering_key")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("sequence")
        batch.drop_column("ordering_key")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("ordering")
