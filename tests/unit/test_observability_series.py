"""The pure shaping of metrics: status classes, outcome labels, queues, the endpoint cap."""

from __future__ import annotations

import pytest

from app.names import partition_queue
from app.observability.series import (
    EndpointStat,
    counts_by_label,
    outcome_of,
    select_endpoints,
    status_class,
    waiting_by_queue,
)
from app.partitioning import partition_for


class TestStatusClass:
    @pytest.mark.parametrize(("status", "label"), [
        (200, "2xx"), (204, "2xx"), (301, "3xx"), (410, "4xx"), (503, "5xx"), (101, "1xx"),
        (None, "error"), (0, "error"), (999, "error"),
    ])
    def test_a_status_becomes_its_class_and_no_status_is_an_error(self, status: int | None,
                                                                  label: str) -> None:
        assert status_class(status) == label


class TestOutcomeOf:
    def test_a_deferred_delivery_is_deferred_although_it_also_has_a_retry(self) -> None:
        sets: dict[str, set[str]] = {"succeeded": set(), "dead": set(), "deferred": {"d1"},
                                     "retrying": {"d1", "d2"}, "superseded": set()}
        assert outcome_of("d1", **sets) == "deferred"
        assert outcome_of("d2", **sets) == "retrying"

    def test_a_superseded_delivery_counts_only_as_superseded(self) -> None:
        assert outcome_of("d1", succeeded={"d1"}, dead=set(), deferred=set(), retrying=set(),
                          superseded={"d1"}) == "superseded"

    def test_a_delivery_in_no_list_has_no_outcome(self) -> None:
        assert outcome_of("d9", succeeded={"d1"}, dead=set(), deferred=set(), retrying=set(),
                          superseded=set()) is None


class TestWaitingByQueue:
    def test_counts_go_to_the_endpoints_partition_queue_and_every_queue_is_listed(self) -> None:
        totals = waiting_by_queue([("ep_a", "pending", 3), ("ep_a", "retry_scheduled", 2),
                                   ("ep_b", "pending", 1)], partitions=4)
        assert len(totals) == 4 * 3
        queue_a = partition_queue(partition_for("ep_a", 4))
        queue_b = partition_queue(partition_for("ep_b", 4))
        assert totals[(queue_a, "retry_scheduled")] == 2
        assert totals[(queue_a, "pending")] == 3 + (1 if queue_b == queue_a else 0)
        assert sum(totals.values()) == 6

    def test_a_state_that_is_not_waiting_is_ignored(self) -> None:
        assert sum(waiting_by_queue([("ep_a", "succeeded", 5)], partitions=2).values()) == 0


class TestSelectEndpoints:
    def test_the_worst_endpoints_are_kept_and_the_rest_counted_as_omitted(self) -> None:
        stats = [EndpointStat("ep_ok", "t", 100, 100), EndpointStat("ep_bad", "t", 4, 0),
                 EndpointStat("ep_half", "t", 10, 5), EndpointStat("ep_busy_ok", "t", 900, 900)]
        chosen, omitted = select_endpoints(stats, limit=2)
        assert [s.endpoint_id for s in chosen] == ["ep_bad", "ep_half"]
        assert omitted == 2

    def test_among_equal_ratios_the_busiest_comes_first(self) -> None:
        stats = [EndpointStat("ep_small", "t", 2, 2), EndpointStat("ep_big", "t", 50, 50)]
        assert [s.endpoint_id for s in select_endpoints(stats, 1)[0]] == ["ep_big"]

    def test_endpoints_without_attempts_get_no_series(self) -> None:
        assert select_endpoints([EndpointStat("ep_idle", "t", 0, 0)], 10) == ([], 0)

    def test_a_limit_of_zero_keeps_none(self) -> None:
        assert select_endpoints([EndpointStat("ep", "t", 1, 1)], 0) == ([], 1)

    def test_the_ratio_is_the_share_of_successful_attempts(self) -> None:
        assert EndpointStat("ep", "t", 8, 6).ratio == 0.75


class TestCountsByLabel:
    def test_every_known_label_is_present_and_a_missing_label_is_unknown(self) -> None:
        assert counts_by_label([("exhausted", 2), (None, 1)], ["exhausted", "permanent_4xx"]) == {
            "exhausted": 2, "permanent_4xx": 0, "unknown": 1}
