"""The engine's rate-limit step: what waits, what is deferred, what is reported, and
that an endpoint without a limit never reaches the buckets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.engine import DeliveryEngine
from app.engine.limiter import Buckets, LocalBuckets, RateLimits, redis_url
from app.engine.ratelimit import RECOVERY_STEP, Grant, RateLimit
from app.models import DeliveryState, Endpoint
from app.transport import HttpResult
from tests.unit.conftest import T0, FixedClock, Harness, ScriptedTransport, http


def lowest(a: float, b: float) -> float:
    return a


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class EndpointView:
    id: str
    rate_limit_per_second: float | None = None
    rate_limit_burst: int | None = None


@dataclass
class Item:
    delivery_id: str
    endpoint: EndpointView
    probe: bool = False


class CountingBuckets(LocalBuckets):
    """Local buckets that count the round trips a Redis store would make."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.acquires: list[tuple[str, int]] = []
        self.feedbacks: list[tuple[str, int, bool, float | None]] = []

    def acquire(self, endpoint_id: str, limit: RateLimit, want: int, max_wait: float) -> Grant:
        self.acquires.append((endpoint_id, want))
        return super().acquire(endpoint_id, limit, want, max_wait)

    def feedback(self, endpoint_id: str, limit: RateLimit, successes: int, throttle: bool,
                 retry_after: float | None) -> float:
        self.feedbacks.append((endpoint_id, successes, throttle, retry_after))
        return super().feedback(endpoint_id, limit, successes, throttle, retry_after)


def never() -> Buckets:
    raise AssertionError("an endpoint without a rate limit reached the buckets")


LIMITED = EndpointView("ep_limited", 10.0, 2)
FREE = EndpointView("ep_free")


class TestHoldBack:
    """One acquire per limited endpoint; deliveries wait for their token or are deferred."""

    def test_endpoints_without_a_limit_never_reach_the_buckets(self) -> None:
        limits = RateLimits(never, max_wait=1.0, uniform=lowest)
        held = limits.hold_back([Item(f"d{i}", FREE) for i in range(50)])
        limits.observe(held, [("ep_free", http(429, {"Retry-After": "5"}))], T0)
        assert (held.waits, held.deferred, held.limits) == ({}, {}, {})

    def test_a_batch_costs_one_acquire_per_limited_endpoint(self) -> None:
        buckets = CountingBuckets(Clock())
        limits = RateLimits(lambda: buckets, max_wait=0.5, uniform=lowest)
        items = [Item(f"d{i}", LIMITED if i % 2 else FREE) for i in range(10)]
        limits.hold_back(items)
        assert buckets.acquires == [("ep_limited", 5)]

    def test_the_burst_goes_now_the_next_tokens_wait_and_the_rest_is_deferred(self) -> None:
        limits = RateLimits(lambda: CountingBuckets(Clock()), max_wait=0.3, uniform=lowest)
        held = limits.hold_back([Item(f"d{i}", LIMITED) for i in range(8)])
        # burst 2 now; tokens at 0.1, 0.2, 0.3 s reserved; the rest due back at once
        # (whole seconds, early enough to reserve their tokens at 0.4, 0.5, 0.6 s then)
        assert held.waits == pytest.approx({"d2": 0.1, "d3": 0.2, "d4": 0.3})
        assert held.deferred == {"d5": 0.0, "d6": 0.0, "d7": 0.0}
        assert held.reasons["d5"] == "rate limit 10/s"

    def test_a_probe_is_never_held_back(self) -> None:
        buckets = CountingBuckets(Clock())
        limits = RateLimits(lambda: buckets, max_wait=0.0, uniform=lowest)
        held = limits.hold_back([Item("probe", LIMITED, probe=True)])
        assert (held.waits, held.deferred, buckets.acquires) == ({}, {}, [])


class TestObserve:
    """A 429 slows the endpoint down; successes only cost a round trip while it is slowed."""

    def setup(self, max_wait: float = 1.0) -> tuple[Clock, CountingBuckets, RateLimits]:
        clock = Clock()
        buckets = CountingBuckets(clock)
        return clock, buckets, RateLimits(lambda: buckets, max_wait=max_wait, uniform=lowest)

    def test_successes_at_full_rate_cost_no_round_trip(self) -> None:
        _, buckets, limits = self.setup()
        held = limits.hold_back([Item("d0", LIMITED)])
        limits.observe(held, [("ep_limited", http(200))], T0)
        assert buckets.feedbacks == []

    def test_a_429_with_retry_after_slows_the_endpoint_and_holds_its_next_token(self) -> None:
        _, buckets, limits = self.setup(max_wait=0.0)
        held = limits.hold_back([Item("d0", LIMITED)])
        answers: list[tuple[str, HttpResult]] = [
            ("ep_limited", http(429, {"retry-after": "2"})), ("ep_limited", http(200))]
        limits.observe(held, answers, T0)
        assert buckets.feedbacks == [("ep_limited", 1, True, 2.0)]

        held = limits.hold_back([Item("d1", LIMITED)])
        assert held.deferred["d1"] == 2.0  # held 2 s, then 5/s: its token at 2.2 s
        assert held.reasons["d1"] == "rate limit 5/s (slowed down after HTTP 429)"

    def test_the_rate_comes_back_step_by_step_after_successes(self) -> None:
        clock, _, limits = self.setup()
        limits.observe(limits.hold_back([Item("d0", LIMITED)]),
                       [("ep_limited", http(429))], T0)
        clock.now += 10
        held = limits.hold_back([Item("d1", LIMITED)])
        assert held.limits["ep_limited"][1] == 0.5
        limits.observe(held, [("ep_limited", http(200))] * 5, T0)
        held = limits.hold_back([Item("d2", LIMITED)])
        assert held.limits["ep_limited"][1] == pytest.approx(0.5 + 5 * RECOVERY_STEP)

    def test_other_failures_leave_the_rate_alone(self) -> None:
        _, buckets, limits = self.setup()
        held = limits.hold_back([Item("d0", LIMITED)])
        limits.observe(held, [("ep_limited", http(503)), ("ep_limited", http(500))], T0)
        assert buckets.feedbacks == []


class TestBrokerUrl:
    """The limiter uses the broker's Redis; a broker that is not Redis has no Redis URL."""

    def test_redis_urls_are_used_as_they_are_and_a_kombu_socket_url_is_translated(self) -> None:
        assert redis_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
        assert redis_url("redis+socket:///tmp/redis.sock") == "unix:///tmp/redis.sock"
        assert redis_url("amqp://guest:guest@127.0.0.1:5672//") is None


class TestInTheEngine:
    """Through the engine: over the limit is deferred, not an attempt; the rest is sent."""

    @pytest.fixture
    def h(self, make_harness: Callable[..., Harness]) -> Harness:
        return make_harness(retry_jitter=0, broker_countdown_max=60, slot_wait=0)

    def test_deliveries_over_the_limit_are_deferred_with_their_attempt_given_back(
        self, h: Harness
    ) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant)
        with h.engine.begin() as conn:
            conn.execute(update(Endpoint).where(Endpoint.id == endpoint.id)
                         .values(rate_limit_per_second=2.0, rate_limit_burst=2))
        ids = [h.publish(tenant).delivery_ids[0] for _ in range(5)]
        buckets = CountingBuckets(Clock())
        transport = ScriptedTransport(*[http(200)] * 5)
        engine = DeliveryEngine(h.settings, h.engine, transport, clock=FixedClock(T0),
                                uniform=lowest,
                                rate_limits=RateLimits(lambda: buckets, 0.0, lowest))

        outcome = engine.run(ids)

        assert outcome.succeeded == ids[:2]
        assert outcome.deferred == ids[2:]
        assert len(transport.calls) == 2
        for index, delivery_id in enumerate(ids[2:]):
            row = h.delivery(delivery_id)
            assert (row.state, row.attempt_count) == (DeliveryState.PENDING, 0)
            assert row.next_attempt_at == T0 + timedelta(seconds=(0.5 * (index + 1)) // 1)
            assert row.last_error == "deferred: rate limit 2/s"
            assert h.attempts(delivery_id) == []
        assert buckets.acquires == [(endpoint.id, 5)]

    def test_an_unlimited_endpoint_is_sent_without_the_limiter(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        ids = [h.publish(tenant).delivery_ids[0] for _ in range(3)]
        engine = DeliveryEngine(h.settings, h.engine, ScriptedTransport(*[http(200)] * 3),
                                clock=FixedClock(T0), uniform=lowest,
                                rate_limits=RateLimits(never, 0.0, lowest))
        assert engine.run(ids).succeeded == ids
