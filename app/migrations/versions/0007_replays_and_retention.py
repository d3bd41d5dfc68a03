"""Replays by time window and retention: the ``replays`` table with its cursor and
counts, ``replay_items`` (one row per delivery a replay handled, so a replay never
sends a delivery twice), a per-tenant retention override, pruned event payloads,
and an index for the replay's window walk.

Revision ID: 0007_replays_and_retention
Revises: 0006_delivery_engine
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0007_replays_and_retention"
down_revision = "0006_delivery_engine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer()))
    with op.batch_alter_table("events") as batch:
        batch.alter_column("payload", existing_type=JSONDoc, nullable=True)
        batch.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True)))
    op.create_index("ix_deliveries_tenant_created", "deliveries", ["tenant_id", "created_at", "id"])
    op.create_table(
        "replays",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("endpoint_id", sa.String(40)),
        sa.Column("event_type", sa.String(128)),
        sa.Column("state_filter", sa.String(20), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cursor_created_at", sa.DateTime(timezone=True)),
        sa.Column("cursor_id", sa.String(40)),
        sa.Column("matched", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sent", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pruned", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped_disabled", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped_active", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "replay_items",
        sa.Column("replay_id", sa.String(40), sa.ForeignKey("replays.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("source_delivery_id", sa.String(40),
                  sa.ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("outcome", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replay_items")
    op.drop_table("replays")
    op.drop_index("ix_deliveries_tenant_created", table_name="deliveries")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("pruned_at")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("retention_days")
