"""An index on ``attempts.started_at``: ``/metrics`` reads the success ratio per endpoint
from the attempts of a recent window (app/observability/collector.py), which without it
would scan the whole table on every scrape.

Revision ID: 0008_attempts_started_at_index
Revises: 0007_replays_and_retention
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "0008_attempts_started_at_index"
down_revision = "0007_replays_and_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_attempts_started_at", table_name="attempts")
