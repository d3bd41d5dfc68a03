"""The delivery engine: circuit breaker state on each endpoint, shared by every worker
of the fleet, and a version of each tenant's endpoints for the publishers' caches.

Revision ID: 0006_delivery_engine
Revises: 0005_incoming_webhooks
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_delivery_engine"
down_revision = "0005_incoming_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("circuit_state", sa.String(20), nullable=False,
                                   server_default="closed"))
        batch.add_column(sa.Column("circuit_failures", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("circuit_cooloff_seconds", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("circuit_retry_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("endpoints_version", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("endpoints_version")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("circuit_retry_at")
        batch.drop_column("circuit_cooloff_seconds")
        batch.drop_column("circuit_failures")
        batch.drop_column("circuit_state")
