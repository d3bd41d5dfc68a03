"""The change-feed migration builds exactly the tables the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Table

import app.changefeed.models  # noqa: F401 - registers the change-feed tables on Base
from app.models import Base
from tests.unit.conftest import Harness

CHANGE_FEED_TABLES = {"outbox", "watcher_positions", "watcher_rows"}


def _table_of(diff: Any) -> str:
    """The table one alembic diff entry is about: ``(op, Table)``, ``(op, Index|Constraint)``,
    ``(op, schema, table, …)``, or a list of column modifications shaped like the last."""
    entry = diff[0] if isinstance(diff, list) else diff
    subject = entry[1]
    if isinstance(subject, Table):
        return str(subject.name)
    if getattr(subject, "table", None) is not None:
        return str(subject.table.name)
    return str(entry[2])


def change_feed_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    return [d for d in diffs if _table_of(d) in CHANGE_FEED_TABLES]


class TestMigration:
    """0003_change_feed and app/changefeed/models.py agree, column for column and index for index."""

    def test_the_migrated_schema_matches_the_models(self, harness: Harness) -> None:
        assert change_feed_differences(harness.engine) == []

    def test_the_comparison_would_notice_a_missing_table(self, harness: Harness) -> None:
        with harness.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE watcher_rows")
        assert [d[0] for d in change_feed_differences(harness.engine)] == ["add_table"]

    def test_the_comparison_would_notice_a_missing_column(self, harness: Harness) -> None:
        with harness.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE outbox DROP COLUMN last_error")
        differences = change_feed_differences(harness.engine)
        assert [(d[0], d[2], d[3].name) for d in differences] == [("add_column", "outbox", "last_error")]
