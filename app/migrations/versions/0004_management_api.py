"""Management API: tenant API keys, environments, deleted and one-off endpoints.

Revision ID: 0004_management_api
Revises: 0003_change_feed
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_management_api"
down_revision = "0003_change_feed"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("environment", sa.String(20), nullable=False,
                                   server_default="production"))
        batch.add_column(sa.Column("deleted_at", TS))
        batch.add_column(sa.Column("one_off", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("environment", sa.String(20), nullable=False,
                                   server_default="production"))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("environment")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("one_off")
        batch.drop_column("deleted_at")
        batch.drop_column("environment")
    op.drop_index("ix_api_keys_tenant_id", "api_keys")
    op.drop_table("api_keys")
