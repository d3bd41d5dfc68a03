"""The retry schedule and Retry-After parsing, to the millisecond."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from app.retry_policy import MIN_RETRY_AFTER_SECONDS, RetryPolicy, parse_retry_after

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def lowest(a: float, b: float) -> float:
    return a


def highest(a: float, b: float) -> float:
    return b


def never(a: float, b: float) -> float:
    raise AssertionError("the random source must not be used here")


class TestNominalSchedule:
    """Without jitter the waits grow by the multiplier from the base, up to the cap."""

    def test_the_default_schedule_for_eight_attempts(self) -> None:
        assert RetryPolicy().schedule(8) == [5, 20, 80, 320, 1280, 5120, 20480]

    @pytest.mark.parametrize(
        ("attempts_made", "expected"),
        [(0, 5.0), (1, 5.0), (2, 20.0), (3, 80.0), (7, 20480.0), (8, 21600.0), (20, 21600.0)],
    )
    def test_nominal_delay_after_n_failures(self, attempts_made: int, expected: float) -> None:
        assert RetryPolicy().nominal_delay(attempts_made) == expected

    def test_max_delay_caps_every_wait(self) -> None:
        policy = RetryPolicy(max_delay_seconds=100)
        assert policy.schedule(6) == [5, 20, 80, 100, 100]

    def test_a_single_attempt_has_no_waits(self) -> None:
        assert RetryPolicy().schedule(1) == []

    def test_base_and_multiplier_are_honoured(self) -> None:
        assert RetryPolicy(base_seconds=1, multiplier=2).schedule(5) == [1, 2, 4, 8]


class TestJitter:
    """Jitter scales the nominal wait by a factor drawn from [1 - jitter, 1 + jitter]."""

    @pytest.mark.parametrize(
        ("uniform", "expected"), [(lowest, 16.0), (highest, 24.0)], ids=["low", "high"]
    )
    def test_jitter_bounds(self, uniform: Callable[[float, float], float], expected: float) -> None:
        assert RetryPolicy().delay(2, uniform=uniform) == pytest.approx(expected)

    def test_the_random_source_is_asked_for_the_jitter_range(self) -> None:
        asked: list[tuple[float, float]] = []

        def record(a: float, b: float) -> float:
            asked.append((a, b))
            return 1.0

        assert RetryPolicy(jitter=0.25).delay(3, uniform=record) == 80.0
        assert asked == [(0.75, 1.25)]

    def test_the_default_random_source_stays_within_the_bounds(self) -> None:
        delays = [RetryPolicy().delay(1) for _ in range(200)]
        assert all(4.0 <= d <= 6.0 for d in delays)
        assert len(set(delays)) > 1

    def test_zero_jitter_gives_the_nominal_delay_without_randomness(self) -> None:
        assert RetryPolicy(jitter=0).delay(4, uniform=never) == 320.0

    def test_jitter_applies_after_the_cap(self) -> None:
        policy = RetryPolicy(max_delay_seconds=100)
        assert policy.delay(10, uniform=highest) == pytest.approx(120.0)


class TestRetryAfterWins:
    """A receiver's Retry-After replaces the schedule, clamped to [1 s, retry_after_max]."""

    def test_retry_after_replaces_the_schedule_and_skips_jitter(self) -> None:
        assert RetryPolicy().delay(5, retry_after=30.0, uniform=never) == 30.0

    @pytest.mark.parametrize(
        ("retry_after", "expected"),
        [(0.0, MIN_RETRY_AFTER_SECONDS), (0.2, 1.0), (1.0, 1.0), (3600.0, 3600.0),
         (5000.0, 3600.0)],
    )
    def test_retry_after_is_clamped(self, retry_after: float, expected: float) -> None:
        assert RetryPolicy().delay(1, retry_after=retry_after, uniform=never) == expected

    def test_the_clamp_follows_retry_after_max(self) -> None:
        policy = RetryPolicy(retry_after_max_seconds=60)
        assert policy.delay(1, retry_after=600.0, uniform=never) == 60.0


class TestParseRetryAfter:
    """Retry-After is delta-seconds or an HTTP-date; anything else is ignored."""

    @pytest.mark.parametrize(("value", "expected"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0)])
    def test_delta_seconds(self, value: str, expected: float) -> None:
        assert parse_retry_after(value, now=NOW) == expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Tue, 01 Jan 2030 12:00:30 GMT", 30.0),
            ("Tue, 01 Jan 2030 13:00:00 GMT", 3600.0),
            ("Tue, 01 Jan 2030 12:00:30", 30.0),
            ("Tue, 01 Jan 2030 11:59:00 GMT", 0.0),
        ],
        ids=["30s-ahead", "an-hour-ahead", "no-zone-is-utc", "past-is-zero"],
    )
    def test_http_date_is_measured_from_now(self, value: str, expected: float) -> None:
        assert parse_retry_after(value, now=NOW) == expected

    @pytest.mark.parametrize("value", ["soon", "-5", "1.5", "Tue, 99 Foo 2030", "12 seconds"])
    def test_garbage_is_ignored(self, value: str) -> None:
        assert parse_retry_after(value, now=NOW) is None

    @pytest.mark.parametrize("value", ["", "   ", None])
    def test_empty_or_absent_is_ignored(self, value: str | None) -> None:
        assert parse_retry_after(value, now=NOW) is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("9999999999", 9999999999.0),
            ("²", None),
            ("١٢", None),
            ("12\u0660", None),
            ("12345678901", None),
            ("1" * 5000, None),
            ("Tue, 99999999999999999999 Jan 2030 12:00:00 GMT", None),
            ("Tue, 01 Jan 2030 12:00:99999999999999999999 GMT", None),
            ("Tue, 01 Jan 99999 12:00:00 GMT", None),
            ("+5", None),
            ("\x00", None),
        ],
        ids=["ten-digits", "superscript-two", "arabic-indic", "mixed-digits", "eleven-digits",
             "5000-digits", "huge-day", "huge-second", "year-99999",
             "signed", "nul"],
    )
    def test_only_ascii_digits_or_a_real_http_date_count_and_nothing_raises(
        self, value: str, expected: float | None
    ) -> None:
        assert parse_retry_after(value, now=NOW) == expected

    def test_no_digit_outside_ascii_is_read_as_seconds(self) -> None:
        digits = [chr(c) for c in range(0x110000) if chr(c).isdigit() and not chr(c).isascii()]
        assert len(digits) > 100
        assert {d: parse_retry_after(d * 2, now=NOW) for d in digits} == dict.fromkeys(digits)
