"""The retention policy: each tenant's horizon, which rows a prune walk may take, and when it stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import InputError
from app.retention import (
    MAX_RETENTION_DAYS,
    Horizon,
    WalkRow,
    check_retention_days,
    prunable,
    walk_finished,
)

NOW = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
HORIZON = Horizon(now=NOW, default_days=30, overrides={"tnt_short": 7, "tnt_long": 90})


def row(key: int, days_ago: float, tenant: str = "tnt_default", *, final: bool = True) -> WalkRow:
    return WalkRow(key=key, tenant_id=tenant, at=NOW - timedelta(days=days_ago), final=final)


class TestHorizon:
    """A tenant's override wins over the default; the newest cutoff is the shortest retention's."""

    def test_a_tenant_without_an_override_keeps_the_default(self) -> None:
        assert HORIZON.cutoff("tnt_default") == NOW - timedelta(days=30)

    def test_an_override_sets_the_tenant_s_own_cutoff(self) -> None:
        assert HORIZON.cutoff("tnt_short") == NOW - timedelta(days=7)
        assert HORIZON.cutoff("tnt_long") == NOW - timedelta(days=90)

    def test_the_newest_cutoff_is_that_of_the_shortest_retention(self) -> None:
        assert HORIZON.newest_cutoff == NOW - timedelta(days=7)
        assert Horizon(now=NOW, default_days=30).newest_cutoff == NOW - timedelta(days=30)


class TestPrunable:
    """Only rows past their own tenant's horizon, of final deliveries, may go."""

    def test_rows_past_the_horizon_of_final_deliveries_are_taken(self) -> None:
        rows = [row(1, 31), row(2, 29), row(3, 45)]
        assert prunable(rows, HORIZON) == [1, 3]

    def test_a_delivery_that_is_not_final_is_never_pruned(self) -> None:
        assert prunable([row(1, 400, final=False), row(2, 400)], HORIZON) == [2]

    def test_each_row_is_judged_by_its_own_tenant(self) -> None:
        rows = [row(1, 10, "tnt_short"), row(2, 10), row(3, 60, "tnt_long"), row(4, 91, "tnt_long")]
        assert prunable(rows, HORIZON) == [1, 4]

    def test_a_row_exactly_at_the_horizon_is_kept(self) -> None:
        assert prunable([row(1, 30)], HORIZON) == []


class TestWalkFinished:
    """The walk reads on while a full batch may still hold old rows."""

    def test_a_short_batch_is_the_end_of_the_table(self) -> None:
        assert walk_finished([row(1, 400)], HORIZON, batch=2)
        assert walk_finished([], HORIZON, batch=2)

    def test_a_full_batch_holding_an_old_row_is_not_the_end(self) -> None:
        assert not walk_finished([row(1, 1), row(2, 8)], HORIZON, batch=2)

    def test_a_full_batch_newer_than_every_horizon_ends_the_walk(self) -> None:
        assert walk_finished([row(1, 6), row(2, 1)], HORIZON, batch=2)

    def test_a_row_kept_only_because_it_is_not_final_does_not_end_the_walk(self) -> None:
        assert not walk_finished([row(1, 400, final=False), row(2, 1)], HORIZON, batch=2)


class TestCheckRetentionDays:
    """A tenant's override is whole days from 1 to ten years, or None for the default."""

    @pytest.mark.parametrize("days", [1, 30, MAX_RETENTION_DAYS, None])
    def test_accepted(self, days: int | None) -> None:
        assert check_retention_days(days) == days

    @pytest.mark.parametrize("days", [0, -1, MAX_RETENTION_DAYS + 1, True])
    def test_refused(self, days: int) -> None:
        with pytest.raises(InputError, match="from 1 to 3650"):
            check_retention_days(days)
