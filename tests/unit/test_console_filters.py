"""The console's filters: times and spans, and every problem named by its field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.console.filters import parse_delivery_filter, parse_time
from tests.unit.conftest import T0


class TestParseTime:
    @pytest.mark.parametrize(("text", "expected"), [
        ("2030-01-01", T0 - timedelta(hours=12)),
        ("2030-01-01T12:00Z", T0),
        ("2030-01-01T14:00+02:00", T0),
        ("2030-01-01T12:00", T0),
        ("15m", T0 - timedelta(minutes=15)),
        ("2h", T0 - timedelta(hours=2)),
        ("7d", T0 - timedelta(days=7)),
        (" 30 s ", T0 - timedelta(seconds=30)),
    ])
    def test_a_time_or_a_span_back_from_now_is_read_as_utc(self, text: str, expected: object) -> None:
        assert parse_time(text, T0) == expected

    @pytest.mark.parametrize("text", ["yesterday", "2030-13-01", "1e5", "-2h", "999999w",
                                      "0001-01-01T00:00+01:00", "2030-01-01T12:00Z" * 3])
    def test_anything_else_is_none(self, text: str) -> None:
        assert parse_time(text, T0) is None


class TestParseDeliveryFilter:
    def test_an_empty_query_is_an_empty_filter(self) -> None:
        flt, errors = parse_delivery_filter({}, T0)
        assert errors == {} and flt.is_empty()

    def test_every_field_is_read(self) -> None:
        flt, errors = parse_delivery_filter({
            "webhook": "ep_1", "event_type": "crew.status.changed", "state": "dead",
            "reason": "permanent_4xx", "since": "2h", "until": "1h"}, T0)
        assert errors == {}
        assert (flt.webhook_id, flt.event_type, flt.state, flt.reason) == (
            "ep_1", "crew.status.changed", "dead", "permanent_4xx")
        assert (flt.since, flt.until) == (T0 - timedelta(hours=2), T0 - timedelta(hours=1))

    def test_each_problem_is_named_by_its_field_and_no_filter_is_applied(self) -> None:
        flt, errors = parse_delivery_filter({
            "webhook": "ep 1; drop", "event_type": "<b>", "state": "exploded", "reason": "bored",
            "since": "soon"}, T0)
        assert set(errors) == {"webhook", "event_type", "state", "reason", "since"}
        assert flt.is_empty() and flt.raw["since"] == "soon"

    def test_until_must_come_after_since(self) -> None:
        _, errors = parse_delivery_filter({"since": "1h", "until": "2h"}, T0)
        assert errors == {"until": "must be later than since"}
