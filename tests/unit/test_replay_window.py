"""Replay selection: the window a replay may cover, what it does with each delivery, and its cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import InvalidSelection
from app.replay_window import (
    Candidate,
    Cursor,
    Outcome,
    StateFilter,
    check_window,
    next_cursor,
    outcome,
    parse_state_filter,
)

NOW = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)


def candidate(state: str = "succeeded", *, pruned: bool = False, live: bool = True,
              delivery_id: str = "dlv_1", minutes: int = 0) -> Candidate:
    return Candidate(delivery_id=delivery_id, endpoint_id="ep_1",
                     created_at=NOW - timedelta(minutes=minutes), state=state,
                     event_pruned=pruned, endpoint_live=live)


class TestCheckWindow:
    """A window is refused when it is empty or reaches past the retention horizon."""

    def test_a_window_inside_retention_is_kept(self) -> None:
        since, until = NOW - timedelta(days=2), NOW - timedelta(days=1)
        assert check_window(since, until, retention_days=30, now=NOW) == (since, until)

    def test_no_until_means_now(self) -> None:
        assert check_window(NOW - timedelta(hours=1), None, retention_days=30, now=NOW)[1] == NOW

    def test_an_until_in_the_future_is_capped_at_now(self) -> None:
        window = check_window(NOW - timedelta(hours=1), NOW + timedelta(days=3), retention_days=30,
                              now=NOW)
        assert window[1] == NOW

    def test_since_after_until_is_refused(self) -> None:
        with pytest.raises(InvalidSelection, match=r"since \(.*\) must be before until"):
            check_window(NOW - timedelta(hours=1), NOW - timedelta(hours=2), retention_days=30,
                         now=NOW)

    def test_since_equal_to_until_is_refused(self) -> None:
        moment = NOW - timedelta(hours=1)
        with pytest.raises(InvalidSelection, match="must be before until"):
            check_window(moment, moment, retention_days=30, now=NOW)

    def test_a_window_starting_before_the_retention_horizon_is_refused(self) -> None:
        with pytest.raises(InvalidSelection, match="before the retention horizon of 7 days"):
            check_window(NOW - timedelta(days=8), None, retention_days=7, now=NOW)

    def test_a_window_starting_at_the_horizon_is_accepted(self) -> None:
        check_window(NOW - timedelta(days=7), None, retention_days=7, now=NOW)

    def test_a_naive_time_is_refused(self) -> None:
        with pytest.raises(InvalidSelection, match="time zone"):
            check_window(datetime(2030, 1, 30), None, retention_days=30, now=NOW)


class TestOutcome:
    """Each delivery of the window is sent once, or counted as skipped with its reason."""

    @pytest.mark.parametrize("state", ["succeeded", "dead"])
    def test_a_final_delivery_of_a_live_endpoint_is_sent(self, state: str) -> None:
        assert outcome(candidate(state)) is Outcome.SENT

    @pytest.mark.parametrize("state", ["pending", "retry_scheduled", "in_flight"])
    def test_a_delivery_still_under_way_is_skipped_as_active(self, state: str) -> None:
        assert outcome(candidate(state)) is Outcome.SKIPPED_ACTIVE

    def test_a_delivery_of_a_disabled_or_deleted_endpoint_is_skipped(self) -> None:
        assert outcome(candidate(live=False)) is Outcome.SKIPPED_DISABLED

    def test_a_pruned_event_is_reported_as_pruned_before_anything_else(self) -> None:
        assert outcome(candidate("pending", pruned=True, live=False)) is Outcome.PRUNED


class TestCursor:
    """The cursor is the last delivery of a batch, in (created_at, id) order."""

    def test_the_cursor_moves_to_the_last_delivery_of_the_batch(self) -> None:
        batch = [candidate(delivery_id="dlv_1", minutes=5), candidate(delivery_id="dlv_2", minutes=1)]
        assert next_cursor(batch, None) == Cursor(NOW - timedelta(minutes=1), "dlv_2")

    def test_an_empty_batch_leaves_the_cursor_where_it_was(self) -> None:
        where = Cursor(NOW, "dlv_9")
        assert next_cursor([], where) is where

    def test_cursors_order_by_time_then_id(self) -> None:
        assert Cursor(NOW, "dlv_b") > Cursor(NOW, "dlv_a") > Cursor(NOW - timedelta(seconds=1), "dlv_z")


class TestStateFilter:
    def test_known_states_parse(self) -> None:
        assert [parse_state_filter(s) for s in ("succeeded", "dead", "any")] == list(StateFilter)

    def test_an_unknown_state_is_refused_with_the_choices(self) -> None:
        with pytest.raises(InvalidSelection, match="succeeded, dead or any"):
            parse_state_filter("pending")
