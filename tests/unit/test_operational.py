"""The rules of operational events: who receives them, when they are emitted, when an
endpoint is disabled for failing too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.announce import recipients
from app.catalogue import default_catalogue
from app.errors import InvalidEventType
from app.matching import matches, validate_filters
from app.operational import (
    DELIVERY_EXHAUSTED,
    ENDPOINT_DISABLED,
    ENDPOINT_FAILING,
    ENDPOINT_RECOVERED,
    MAX_REASON_LENGTH,
    OPERATIONAL_EVENT_TYPES,
    EndpointState,
    Notice,
    announces_exhaustion,
    auto_disable_due,
    failing_since_after,
    refuse_operational,
    span,
    streak_reason,
    transitions,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class TestSubscribing:
    """Operational events reach only the endpoints that name them."""

    @pytest.mark.parametrize("event_type", sorted(OPERATIONAL_EVENT_TYPES))
    def test_the_catch_all_filter_does_not_select_them(self, event_type: str) -> None:
        assert not matches("*", event_type)

    @pytest.mark.parametrize("pattern", ["hookline.*", "hookline.endpoint.*",
                                         "hookline.endpoint.disabled"])
    def test_a_filter_that_names_them_selects_them(self, pattern: str) -> None:
        assert matches(pattern, ENDPOINT_DISABLED)

    def test_the_catch_all_filter_still_selects_every_other_event(self) -> None:
        assert matches("*", "crew.status.changed")
        assert matches("*", "hookline.ping")

    def test_they_are_in_the_catalogue_so_exact_filters_validate(self) -> None:
        catalogue = default_catalogue()
        assert {t.name for t in catalogue} >= OPERATIONAL_EVENT_TYPES
        assert validate_filters(sorted(OPERATIONAL_EVENT_TYPES), catalogue) == sorted(
            OPERATIONAL_EVENT_TYPES)

    @pytest.mark.parametrize("event_type", sorted(OPERATIONAL_EVENT_TYPES))
    def test_publishing_them_is_refused(self, event_type: str) -> None:
        with pytest.raises(InvalidEventType, match="operational event"):
            refuse_operational(event_type)

    def test_publishing_anything_else_is_not_refused_here(self) -> None:
        refuse_operational("crew.status.changed")


class TestNeverALoop:
    """An event about an endpoint never goes to it; exhausted operational deliveries are silent."""

    def test_the_endpoint_an_event_is_about_never_receives_it(self) -> None:
        notice = Notice("tnt_1", "production", ENDPOINT_FAILING, "ep_down")
        subscribers = [("ep_down", ("hookline.*",)), ("ep_ops", ("hookline.endpoint.*",)),
                       ("ep_all", ("*",)), ("ep_runs", ("run.*",))]
        assert recipients(subscribers, notice) == ["ep_ops"]

    def test_a_delivery_of_an_operational_event_running_out_is_not_announced(self) -> None:
        for event_type in OPERATIONAL_EVENT_TYPES:
            assert not announces_exhaustion(event_type)
        assert announces_exhaustion("crew.status.changed")
        assert announces_exhaustion("hookline.ping")


def state(enabled: bool = True, circuit: str = "closed") -> EndpointState:
    return EndpointState("tnt_1", "production", enabled, circuit)


class TestTransitions:
    """Events mark changes, not states: once per change."""

    @pytest.mark.parametrize(("before", "after", "expected"), [
        (state(), state(enabled=False), [ENDPOINT_DISABLED]),
        (state(enabled=False), state(enabled=False), []),
        (state(), state(circuit="open"), [ENDPOINT_FAILING]),
        (state(circuit="open"), state(circuit="open"), []),
        (state(circuit="half_open"), state(circuit="open"), []),
        (state(circuit="half_open"), state(), [ENDPOINT_RECOVERED]),
        (state(circuit="open"), state(), [ENDPOINT_RECOVERED]),
        (state(), state(), []),
        (state(), state(enabled=False, circuit="open"), [ENDPOINT_DISABLED, ENDPOINT_FAILING]),
    ])
    def test_each_change_is_named_once(self, before: EndpointState, after: EndpointState,
                                       expected: list[str]) -> None:
        assert [t for _, t in transitions({"ep": before}, {"ep": after})] == expected

    def test_an_endpoint_read_only_before_is_skipped(self) -> None:
        assert transitions({"ep": state()}, {}) == []


class TestFailingStreak:
    """The streak starts at the first failure after a success and ends at a success."""

    def test_the_first_failure_after_a_success_starts_it(self) -> None:
        assert failing_since_after(None, [True], T0) == T0

    def test_further_failures_keep_its_start(self) -> None:
        start = T0 - timedelta(days=1)
        assert failing_since_after(start, [True, True], T0) == start

    def test_a_success_ends_it(self) -> None:
        assert failing_since_after(T0 - timedelta(days=1), [True, False], T0) is None

    def test_failures_after_a_success_in_the_same_batch_start_a_new_one(self) -> None:
        assert failing_since_after(T0 - timedelta(days=1), [True, False, True], T0) == T0

    def test_no_answers_change_nothing(self) -> None:
        assert failing_since_after(T0, [], T0 + timedelta(hours=1)) == T0


class TestAutoDisable:
    """A streak as long as HOOKLINE_AUTO_DISABLE_AFTER disables the endpoint."""

    def test_a_streak_exactly_as_long_as_the_limit_is_due(self) -> None:
        assert auto_disable_due(T0 - timedelta(days=5), T0, 5 * 86400)

    def test_a_shorter_streak_is_not(self) -> None:
        assert not auto_disable_due(T0 - timedelta(days=5) + timedelta(seconds=1), T0, 5 * 86400)

    def test_no_streak_is_never_due(self) -> None:
        assert not auto_disable_due(None, T0, 1)

    def test_a_limit_of_zero_never_disables(self) -> None:
        assert not auto_disable_due(T0 - timedelta(days=365), T0, 0)

    def test_the_reason_says_how_long_and_since_when_and_fits_the_column(self) -> None:
        reason = streak_reason(T0, 5 * 86400)
        assert reason == ("auto-disabled: no successful delivery for 5 d "
                          "(failing since 2030-01-01T12:00:00.000Z)")
        assert len(reason) <= MAX_REASON_LENGTH

    @pytest.mark.parametrize(("seconds", "text"), [(432000, "5 d"), (7200, "2 h"),
                                                   (5400, "90 min"), (3, "3 s"), (2.5, "2.5 s")])
    def test_durations_read_as_a_person_says_them(self, seconds: float, text: str) -> None:
        assert span(seconds) == text


def test_the_exhausted_event_type_is_operational() -> None:
    assert DELIVERY_EXHAUSTED in OPERATIONAL_EVENT_TYPES
