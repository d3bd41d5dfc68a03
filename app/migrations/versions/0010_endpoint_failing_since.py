"""An endpoint's failing streak: ``endpoints.failing_since``, the first failure since its
last success (NULL while it succeeds), read by the sweeper's auto-disable
(app/auto_disable.py) and indexed for that query.

Revision ID: 0010_endpoint_failing_since
Revises: 0009_ordering_and_sequences
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_endpoint_failing_since"
down_revision = "0009_ordering_and_sequences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True)))
    op.create_index("ix_endpoints_failing_since", "endpoints", ["failing_since"])


def downgrade() -> None:
    op.drop_index("ix_endpoints_failing_since", table_name="endpoints")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("failing_since")
