"""Per-endpoint rate limits: ``endpoints.rate_limit_per_second`` and ``rate_limit_burst``
(both NULL: no limit). The buckets themselves live in Redis (app/engine/limiter.py).

Revision ID: 0011_endpoint_rate_limits
Revises: 0010_endpoint_failing_since
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_endpoint_rate_limits"
down_revision = "0010_endpoint_failing_since"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("rate_limit_per_second", sa.Float()))
        batch.add_column(sa.Column("rate_limit_burst", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("rate_limit_burst")
        batch.drop_column("rate_limit_per_second")
