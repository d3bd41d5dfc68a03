"""Rate limits at the edge: the fleet's buckets in Redis, and what the engine asks of them.

:class:`RedisBuckets` keeps each limited endpoint's bucket in one Redis hash under
the broker key prefix (:func:`app.names.rate_limit_key`). An acquire is one Lua
script, so it is atomic across every worker of the fleet, and it reads the time from
Redis (``TIME``), so the fleet shares one clock. The scripts do what
:mod:`app.engine.ratelimit` does, step for step (the integration tests hold them to it).
:class:`LocalBuckets` runs the same arithmetic in the process, for a broker without
Redis (RabbitMQ): there each worker process enforces the limit on its own.

:class:`RateLimits` is the engine's face. Before sending, :meth:`RateLimits.hold_back`
asks once per limited endpoint in the batch for the tokens its deliveries need: a
delivery whose token is there within ``HOOKLINE_SLOT_WAIT`` is sent when it is (the
sender waits), the others are deferred until their tokens are due. After sending,
:meth:`RateLimits.observe` reports 429s and successes (only when they change
something: a 429, or successes while the endpoint is slowed down). An endpoint
without a limit never reaches Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

import redis

from app.engine import ratelimit
from app.engine.judge import header
from app.engine.ratelimit import Bucket, Grant, RateLimit
from app.names import rate_limit_key
from app.retry_policy import parse_retry_after
from app.transport import HttpResult

log = logging.getLogger(__name__)

#: Fields of a bucket's hash: tokens, their time, the adaptive factor.
_STATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local per_second = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 't', 'at', 'f')
local tokens, at, factor = burst, now, 1.0
if state[1] and state[2] and state[3] then
  tokens, at, factor = tonumber(state[1]), tonumber(state[2]), tonumber(state[3])
end
local level = math.min(burst, tokens + math.max(now - at, 0) * per_second * factor)
"""

#: KEYS[1] bucket; ARGV per_second, burst, want, max_wait, ttl → granted, tokens, rate, factor.
ACQUIRE_SCRIPT = _STATE + """
local rate = per_second * factor
local granted = math.floor(level + tonumber(ARGV[4]) * rate + 1e-9)
granted = math.max(0, math.min(tonumber(ARGV[3]), granted))
redis.call('HSET', KEYS[1], 't', tostring(level - granted), 'at', tostring(now),
           'f', tostring(factor))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {granted, tostring(level), tostring(rate), tostring(factor)}
"""

#: KEYS[1] bucket; ARGV per_second, burst, successes, throttled (1/0), retry_after (<0:
#: none), max_hold, min_factor, step, ttl → the new factor.
FEEDBACK_SCRIPT = _STATE + """
factor = math.min(factor + tonumber(ARGV[3]) * tonumber(ARGV[8]), 1.0)
local tokens_now = level
if ARGV[4] == '1' then
  factor = math.max(factor / 2, tonumber(ARGV[7]))
  local hold = math.min(math.max(tonumber(ARGV[5]), 0), tonumber(ARGV[6]))
  tokens_now = math.min(level, 0) - hold * per_second * factor
end
redis.call('HSET', KEYS[1], 't', tostring(tokens_now), 'at', tostring(now),
           'f', tostring(factor))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
return tostring(factor)
"""


class Buckets(Protocol):
    """Where the buckets live."""

    def acquire(self, endpoint_id: str, limit: RateLimit, want: int,
                max_wait: float) -> Grant: ...

    def feedback(self, endpoint_id: str, limit: RateLimit, successes: int,
                 throttle: bool, retry_after: float | None) -> float: ...


class RedisBuckets:
    """The fleet's buckets: one Redis hash per limited endpoint, changed by Lua only."""

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self._acquire = client.register_script(ACQUIRE_SCRIPT)
        self._feedback = client.register_script(FEEDBACK_SCRIPT)

    def key(self, endpoint_id: str) -> str:
        return rate_limit_key(self.prefix, endpoint_id)

    def acquire(self, endpoint_id: str, limit: RateLimit, want: int,
                max_wait: float) -> Grant:
        granted, tokens, per_second, factor = self._acquire(
            keys=[self.key(endpoint_id)],
            args=[repr(limit.per_second), limit.burst, want, repr(max_wait),
                  ratelimit.BUCKET_TTL_SECONDS])
        return Grant(int(granted), float(tokens), float(per_second), float(factor))

    def feedback(self, endpoint_id: str, limit: RateLimit, successes: int,
                 throttle: bool, retry_after: float | None) -> float:
        factor = self._feedback(
            keys=[self.key(endpoint_id)],
            args=[repr(limit.per_second), limit.burst, successes, "1" if throttle else "0",
                  repr(-1.0 if retry_after is None else retry_after),
                  repr(ratelimit.MAX_HOLD_SECONDS), repr(ratelimit.MIN_FACTOR),
                  repr(ratelimit.RECOVERY_STEP), ratelimit.BUCKET_TTL_SECONDS])
        return float(factor)


class LocalBuckets:
    """The same buckets in this process only (a broker without Redis)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, endpoint_id: str, limit: RateLimit, want: int,
                max_wait: float) -> Grant:
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(endpoint_id) or ratelimit.full(limit, now)
            grant, self._buckets[endpoint_id] = ratelimit.acquire(bucket, limit, want,
                                                                  max_wait, now)
            return grant

    def feedback(self, endpoint_id: str, limit: RateLimit, successes: int,
                 throttle: bool, retry_after: float | None) -> float:
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(endpoint_id) or ratelimit.full(limit, now)
            bucket = self._buckets[endpoint_id] = ratelimit.observed(
                bucket, limit, now, successes, throttle, retry_after)
            return bucket.factor


def redis_url(broker_url: str) -> str | None:
    """A redis-py URL for the broker, or None when the broker is not Redis."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url.removeprefix("redis+socket://")
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return broker_url
    return None


def buckets_for(broker_url: str, prefix: str) -> Buckets:
    """The broker's Redis when it is Redis; otherwise per-process buckets (with a warning)."""
    url = redis_url(broker_url)
    if url is None:
        log.warning("rate limits are enforced per worker process: the broker is not Redis")
        return LocalBuckets()
    return RedisBuckets(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5),
                        prefix)


class Limited(Protocol):
    """What :class:`RateLimits` reads of a claimed delivery (:class:`~app.engine.claim.Claim`)."""

    delivery_id: str
    probe: bool

    @property
    def endpoint(self) -> Any: ...


@dataclass(slots=True)
class Held:
    """One batch's answer from the limiter."""

    #: Delivery id → seconds to wait for its token before sending.
    waits: dict[str, float] = field(default_factory=dict)
    #: Delivery id → seconds until its token is due: deferred, not sent.
    deferred: dict[str, float] = field(default_factory=dict)
    #: Delivery id → why it was deferred.
    reasons: dict[str, str] = field(default_factory=dict)
    #: Limited endpoint id → (its limit, its factor when acquired).
    limits: dict[str, tuple[RateLimit, float]] = field(default_factory=dict)


#: How long a delivery waits when the limiter could not be asked.
UNAVAILABLE_WAIT_SECONDS = 1.0


class RateLimits:
    """The engine's rate-limit step (before and after sending)."""

    def __init__(self, buckets: Callable[[], Buckets], max_wait: float,
                 uniform: Callable[[float, float], float]) -> None:
        self._make_buckets = buckets
        self.max_wait = max_wait
        self.uniform = uniform

    @cached_property
    def buckets(self) -> Buckets:
        """Made on first need: an engine whose endpoints have no limit never connects."""
        return self._make_buckets()

    def hold_back(self, items: Sequence[Limited]) -> Held:
        """Tokens for *items* (one acquire per limited endpoint); what waits, what is deferred.

        A circuit's probe is never held back: it is one request, and holding it would
        keep the circuit half-open.
        """
        held = Held()
        by_endpoint: dict[str, list[Limited]] = {}
        for item in items:
            endpoint = item.endpoint
            limit = ratelimit.limit_of(endpoint.rate_limit_per_second, endpoint.rate_limit_burst)
            if limit is None or item.probe:
                continue
            held.limits.setdefault(endpoint.id, (limit, 1.0))
            by_endpoint.setdefault(endpoint.id, []).append(item)
        for endpoint_id, waiting in by_endpoint.items():
            limit = held.limits[endpoint_id][0]
            try:
                grant = self.buckets.acquire(endpoint_id, limit, len(waiting), self.max_wait)
            except redis.RedisError as exc:
                log.warning("rate limiter unavailable for endpoint %s: %s", endpoint_id, exc)
                for item in waiting:
                    held.deferred[item.delivery_id] = UNAVAILABLE_WAIT_SECONDS * self.uniform(1.0, 1.5)
                    held.reasons[item.delivery_id] = "rate limiter unavailable"
                continue
            held.limits[endpoint_id] = (limit, grant.factor)
            for index, item in enumerate(waiting):
                if index < grant.granted:
                    wait = grant.wait(index)
                    if wait > 0:
                        held.waits[item.delivery_id] = wait
                else:
                    held.deferred[item.delivery_id] = ratelimit.deferral(
                        grant, index, self.uniform(0.0, 1.0), self.max_wait)
                    held.reasons[item.delivery_id] = (
                        f"rate limit {grant.rate:g}/s" if grant.factor >= 1.0 else
                        f"rate limit {grant.rate:g}/s (slowed down after HTTP 429)")
        return held

    def observe(self, held: Held, answers: Sequence[tuple[str, HttpResult]],
                now: datetime) -> None:
        """Report the limited endpoints' answers: a 429 slows one down, successes speed it
        back up. *answers* are (endpoint id, result) of the requests sent."""
        if not held.limits:
            return
        seen: dict[str, tuple[int, bool, float | None]] = {}
        for endpoint_id, result in answers:
            if endpoint_id not in held.limits or result.status is None:
                continue
            successes, throttle, retry_after = seen.get(endpoint_id, (0, False, None))
            if result.status == 429:
                throttle = True
                after = parse_retry_after(header(result.headers, "Retry-After"), now=now)
                if after is not None:
                    retry_after = max(retry_after or 0.0, after)
            elif 200 <= result.status < 300:
                successes += 1
            seen[endpoint_id] = (successes, throttle, retry_after)
        for endpoint_id, (successes, throttle, retry_after) in seen.items():
            limit, factor = held.limits[endpoint_id]
            if not throttle and (successes == 0 or factor >= 1.0):
                continue  # nothing would change: no round trip
            try:
                self.buckets.feedback(endpoint_id, limit, successes, throttle, retry_after)
            except redis.RedisError as exc:
                log.warning("could not report to the rate limiter for endpoint %s: %s",
                            endpoint_id, exc)


__all__ = ["ACQUIRE_SCRIPT", "FEEDBACK_SCRIPT", "Buckets", "Held", "LocalBuckets",
           "RateLimits", "RedisBuckets", "buckets_for", "redis_url"]
