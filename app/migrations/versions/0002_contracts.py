"""Per-endpoint wire-contract settings: secret rotation, static headers, auth header.

Revision ID: 0002_contracts
Revises: 0001_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_contracts"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("previous_secret", sa.String(200)))
        batch.add_column(sa.Column("previous_secret_expires_at", TS))
        batch.add_column(sa.Column("headers", JSONDoc, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("auth_header", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("auth_header")
        batch.drop_column("headers")
        batch.drop_column("previous_secret_expires_at")
        batch.drop_column("previous_secret")
