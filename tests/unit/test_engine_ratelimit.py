"""The token bucket of a rate-limited endpoint and its adaptive rule, as pure functions."""

from __future__ import annotations

import pytest

from app.engine.ratelimit import (
    MAX_HOLD_SECONDS,
    MIN_FACTOR,
    RECOVERY_STEP,
    Bucket,
    RateLimit,
    acquire,
    deferral,
    full,
    level,
    limit_of,
    observed,
    rate_limit,
    recovered,
    throttled,
)
from app.errors import InputError

LIMIT = RateLimit(per_second=10.0, burst=5)


class TestBounds:
    """A limit is checked against its bounds, and the message names them."""

    @pytest.mark.parametrize("per_second", [0, -1, 0.001, 10_000.5, float("nan"), float("inf")])
    def test_a_rate_outside_the_bounds_is_refused_naming_them(self, per_second: float) -> None:
        with pytest.raises(InputError, match=r"between 0\.01 and 10000"):
            rate_limit(per_second, 1)

    @pytest.mark.parametrize("burst", [0, -3, 100_001])
    def test_a_burst_outside_the_bounds_is_refused_naming_them(self, burst: int) -> None:
        with pytest.raises(InputError, match="between 1 and 100000"):
            rate_limit(5, burst)

    def test_the_burst_defaults_to_one_seconds_worth_and_at_least_one_token(self) -> None:
        assert rate_limit(20) == RateLimit(20.0, 20)
        assert rate_limit(0.5) == RateLimit(0.5, 1)
        assert rate_limit(2.5) == RateLimit(2.5, 3)

    def test_the_bounds_themselves_are_accepted(self) -> None:
        assert rate_limit(0.01, 1) == RateLimit(0.01, 1)
        assert rate_limit(10_000, 100_000) == RateLimit(10_000.0, 100_000)

    def test_an_endpoint_without_a_stored_rate_has_no_limit(self) -> None:
        assert limit_of(None, None) is None
        assert limit_of(3.0, 7) == RateLimit(3.0, 7)


class TestBucket:
    """Tokens refill at the rate up to the burst; each delivery takes one."""

    def test_a_fresh_bucket_is_full(self) -> None:
        assert level(full(LIMIT, 100.0), LIMIT, 100.0) == 5.0

    def test_tokens_refill_at_the_rate_and_stop_at_the_burst(self) -> None:
        empty = Bucket(0.0, 100.0)
        assert level(empty, LIMIT, 100.2) == pytest.approx(2.0)
        assert level(empty, LIMIT, 110.0) == 5.0

    def test_a_clock_that_went_back_adds_no_tokens(self) -> None:
        assert level(Bucket(1.0, 100.0), LIMIT, 99.0) == 1.0

    def test_the_burst_is_granted_at_once_and_needs_no_wait(self) -> None:
        grant, after = acquire(full(LIMIT, 0.0), LIMIT, want=5, max_wait=0.0, now=0.0)
        assert grant.granted == 5
        assert [grant.wait(i) for i in range(5)] == [0.0] * 5
        assert after.tokens == 0.0

    def test_tokens_due_within_the_wait_are_reserved_and_their_times_given(self) -> None:
        grant, after = acquire(Bucket(0.0, 0.0), LIMIT, want=20, max_wait=1.0, now=0.0)
        assert grant.granted == 10
        assert [round(grant.wait(i), 6) for i in range(3)] == [0.1, 0.2, 0.3]
        assert grant.wait(9) == pytest.approx(1.0)
        assert after.tokens == -10.0  # reserved: the next acquire finds them taken

    def test_reserved_tokens_hold_back_the_next_acquire(self) -> None:
        _, after = acquire(Bucket(0.0, 0.0), LIMIT, want=10, max_wait=1.0, now=0.0)
        grant, _ = acquire(after, LIMIT, want=10, max_wait=1.0, now=0.5)
        assert grant.granted == 5  # tokens due at 1.1 s … 1.5 s
        assert grant.wait(0) == pytest.approx(0.6)

    def test_a_sustained_demand_gets_exactly_the_rate(self) -> None:
        bucket, sent = Bucket(0.0, 0.0), 0
        for step in range(1, 101):  # ten seconds, asking every 0.1 s for more than the rate
            grant, bucket = acquire(bucket, LIMIT, want=50, max_wait=0.0, now=step * 0.1)
            sent += grant.granted
        assert sent == pytest.approx(100, abs=1)

    def test_deliveries_beyond_the_grant_come_back_a_seconds_worth_at_a_time(self) -> None:
        grant, _ = acquire(Bucket(0.0, 0.0), LIMIT, want=35, max_wait=0.0, now=0.0)
        assert grant.granted == 0
        waits = [deferral(grant, i, spread=0.0) for i in range(35)]
        assert waits == [0.0] * 9 + [1.0] * 10 + [2.0] * 10 + [3.0] * 6
        assert deferral(grant, 8, spread=0.5) == 0.0  # 0.9 s + half a token: still 0
        assert deferral(grant, 9, spread=0.5) == 1.0

    def test_a_deferred_delivery_is_due_back_early_by_the_wait_it_may_spend(self) -> None:
        grant, _ = acquire(Bucket(0.0, 0.0), LIMIT, want=30, max_wait=1.0, now=0.0)
        assert grant.granted == 10
        assert grant.wait(24) == pytest.approx(2.5)
        assert deferral(grant, 24, spread=0.0, max_wait=1.0) == 1.0
        assert deferral(grant, 10, spread=0.0, max_wait=2.0) == 0.0


class TestAdaptive:
    """A 429 halves the endpoint's rate and empties its bucket; successes win it back."""

    def test_a_429_halves_the_rate_and_empties_the_bucket(self) -> None:
        after = throttled(full(LIMIT, 0.0), LIMIT, 0.0, retry_after=None)
        assert after.factor == 0.5
        assert level(after, LIMIT, 0.0) == 0.0
        assert level(after, LIMIT, 1.0) == pytest.approx(5.0)  # 5/s now, not 10/s

    def test_retry_after_holds_the_next_token_back_that_long(self) -> None:
        after = throttled(full(LIMIT, 0.0), LIMIT, 0.0, retry_after=3.0)
        grant, _ = acquire(after, LIMIT, want=1, max_wait=0.0, now=0.0)
        assert grant.granted == 0
        assert grant.wait(0) == pytest.approx(3.0 + 1 / 5.0)

    def test_a_retry_after_beyond_the_cap_is_held_to_the_cap(self) -> None:
        after = throttled(full(LIMIT, 0.0), LIMIT, 0.0, retry_after=86_400.0)
        grant, _ = acquire(after, LIMIT, want=1, max_wait=0.0, now=0.0)
        assert grant.wait(0) == pytest.approx(MAX_HOLD_SECONDS + 1 / 5.0)

    def test_repeated_429s_never_take_the_rate_below_the_floor(self) -> None:
        bucket = full(LIMIT, 0.0)
        for _ in range(20):
            bucket = throttled(bucket, LIMIT, 0.0, retry_after=None)
        assert bucket.factor == MIN_FACTOR

    def test_successes_bring_the_rate_back_step_by_step_never_above_the_limit(self) -> None:
        slowed = throttled(full(LIMIT, 0.0), LIMIT, 0.0, retry_after=None)
        one = recovered(slowed, LIMIT, 0.0, successes=1)
        assert one.factor == pytest.approx(0.5 + RECOVERY_STEP)
        steps = round(0.5 / RECOVERY_STEP)
        assert recovered(slowed, LIMIT, 0.0, successes=steps - 1).factor < 1.0
        assert recovered(slowed, LIMIT, 0.0, successes=steps).factor == pytest.approx(1.0)
        assert recovered(slowed, LIMIT, 0.0, successes=10 * steps).factor == 1.0

    def test_recovery_keeps_the_tokens_earned_at_the_old_rate(self) -> None:
        slowed = Bucket(0.0, 0.0, factor=0.5)
        assert recovered(slowed, LIMIT, 0.4, successes=25).tokens == pytest.approx(2.0)

    def test_a_batch_with_successes_and_a_429_ends_slowed_down(self) -> None:
        after = observed(full(LIMIT, 0.0), LIMIT, 0.0, successes=3, throttle=True,
                         retry_after=None)
        assert after.factor == 0.5
        assert observed(Bucket(5.0, 0.0, 0.5), LIMIT, 0.0, successes=3, throttle=False,
                        retry_after=None).factor == pytest.approx(0.5 + 3 * RECOVERY_STEP)
