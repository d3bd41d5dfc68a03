"""Initial schema: tenants, endpoints, events, deliveries, attempts.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", JSONDoc, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(200)),
        sa.Column("contract", sa.String(40), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("timeout_seconds", sa.Float),
        sa.Column("max_attempts", sa.Integer),
        sa.Column("description", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_endpoints_tenant_id", "endpoints", ["tenant_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("payload", JSONDoc, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_events_idem"),
    )
    op.create_index("ix_events_tenant_id", "events", ["tenant_id"])
    op.create_index("ix_events_event_type", "events", ["event_type"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("endpoint_id", sa.String(40), sa.ForeignKey("endpoints.id"), nullable=False),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempt_count", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("queued_at", TS),
        sa.Column("lease_expires_at", TS),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("dead_reason", sa.String(40)),
        sa.Column("dead_at", TS),
        sa.Column("succeeded_at", TS),
        sa.Column("requeue_count", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
    )
    op.create_index("ix_deliveries_state_due", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_endpoint_state", "deliveries", ["endpoint_id", "state"])
    op.create_index("ix_deliveries_dead_at", "deliveries", ["dead_at"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("delivery_id", sa.String(40), sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("attempt_number", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("duration_ms", sa.Float),
        sa.Column("status_code", sa.Integer),
        sa.Column("error_class", sa.String(120)),
        sa.Column("error_message", sa.Text),
        sa.Column("response_excerpt", sa.Text),
    )
    op.create_index("ix_attempts_delivery_id", "attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("deliveries")
    op.drop_table("events")
    op.drop_table("endpoints")
    op.drop_table("tenants")
