"""Incoming webhooks: secret URLs whose calls publish events.

Revision ID: 0005_incoming_webhooks
Revises: 0004_management_api
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_incoming_webhooks"
down_revision = "0004_management_api"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incoming_webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(20), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("last_used_at", TS),
    )
    op.create_index("ix_incoming_webhooks_tenant_id", "incoming_webhooks", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_incoming_webhooks_tenant_id", "incoming_webhooks")
    op.drop_table("incoming_webhooks")
