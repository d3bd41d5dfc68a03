"""Per-endpoint rate limits: the token bucket's arithmetic and the adaptive rule. Pure.

An endpoint with ``rateLimit: {"perSecond": r, "burst": b}`` has one bucket for the
whole fleet (kept in Redis by :mod:`app.engine.limiter`, whose Lua scripts do exactly
what this module does). The bucket holds up to *b* tokens and gains *r × factor* per
second; every attempt takes one.

* **Acquire.** A batch asks for the tokens its deliveries to the endpoint need, in
  one call. A token that will be there within *max_wait* seconds is taken now (the
  bucket may go below zero: the token is reserved) and its delivery is sent when the
  token arrives. The rest are not attempts: they are deferred until their token is
  due (less the wait allowed, so a delivery back early still gets its token), in
  whole seconds, so a large batch comes back a second's worth at a time.
* **Adaptive.** A 429 from the receiver halves *factor* (never below
  :data:`MIN_FACTOR`), empties the bucket, and, with ``Retry-After``, pushes the
  next token that many seconds out (at most :data:`MAX_HOLD_SECONDS`). Each
  success gives back :data:`RECOVERY_STEP` of the configured rate, so the endpoint
  climbs back to its full rate step by step (additive increase, multiplicative
  decrease).

Times are seconds on one clock (Redis ``TIME`` in production), passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.errors import InputError

#: Bounds of ``perSecond``: one delivery every 100 s up to what a small fleet can send.
MIN_PER_SECOND = 0.01
MAX_PER_SECOND = 10_000.0
#: Bounds of ``burst``: at least one token, and no more than a few minutes at full rate.
MIN_BURST = 1
MAX_BURST = 100_000
#: The lowest share of its configured rate a throttled endpoint falls to (six 429s).
MIN_FACTOR = 1 / 64
#: Share of the configured rate each success gives back after a 429.
RECOVERY_STEP = 0.02
#: Longest ``Retry-After`` the bucket honours; longer ones are the retry policy's business.
MAX_HOLD_SECONDS = 300.0
#: An idle endpoint's bucket is forgotten after this long (it would be full again).
BUCKET_TTL_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class RateLimit:
    """An endpoint's configured limit."""

    per_second: float
    burst: int


def rate_limit(per_second: float, burst: int | None = None) -> RateLimit:
    """A checked limit; *burst* defaults to one second's worth (at least one token)."""
    if not (isinstance(per_second, int | float) and math.isfinite(per_second)
            and MIN_PER_SECOND <= per_second <= MAX_PER_SECOND):
        raise InputError(f"rateLimit.perSecond must be between {MIN_PER_SECOND:g} and "
                         f"{MAX_PER_SECOND:g}")
    if burst is None:
        burst = max(MIN_BURST, min(MAX_BURST, math.ceil(per_second)))
    if isinstance(burst, bool) or not isinstance(burst, int) or not (
            MIN_BURST <= burst <= MAX_BURST):
        raise InputError(f"rateLimit.burst must be a whole number between {MIN_BURST} and "
                         f"{MAX_BURST}")
    return RateLimit(float(per_second), burst)


def limit_of(per_second: float | None, burst: int | None) -> RateLimit | None:
    """The limit stored on an endpoint row, or None when it has none."""
    if per_second is None:
        return None
    return RateLimit(per_second, burst or max(MIN_BURST, math.ceil(per_second)))


@dataclass(frozen=True, slots=True)
class Bucket:
    """One endpoint's bucket: *tokens* at time *at* (negative: reserved), and its *factor*."""

    tokens: float
    at: float
    factor: float = 1.0


def full(limit: RateLimit, now: float) -> Bucket:
    """The bucket of an endpoint not seen for a while."""
    return Bucket(float(limit.burst), now, 1.0)


def rate(limit: RateLimit, factor: float) -> float:
    """Tokens per second at *factor* of the configured rate."""
    return limit.per_second * factor


def level(bucket: Bucket, limit: RateLimit, now: float) -> float:
    """Tokens at *now*: refilled since ``bucket.at``, never above the burst."""
    elapsed = max(now - bucket.at, 0.0)
    return min(float(limit.burst), bucket.tokens + elapsed * rate(limit, bucket.factor))


@dataclass(frozen=True, slots=True)
class Grant:
    """What one acquire gave: *granted* of the tokens asked for.

    *tokens* is the level before taking, *rate* the effective rate then; together they
    say when each token asked for is (or would be) there: :meth:`wait`.
    """

    granted: int
    tokens: float
    rate: float
    factor: float = 1.0

    def wait(self, index: int) -> float:
        """Seconds until the token of the *index*-th delivery asked for (0-based)."""
        return max((index + 1 - self.tokens) / self.rate, 0.0)


def acquire(bucket: Bucket, limit: RateLimit, want: int, max_wait: float,
            now: float) -> tuple[Grant, Bucket]:
    """Take up to *want* tokens that are there within *max_wait* seconds."""
    tokens = level(bucket, limit, now)
    per_second = rate(limit, bucket.factor)
    reachable = math.floor(tokens + max_wait * per_second + 1e-9)
    granted = max(0, min(want, reachable))
    return (Grant(granted, tokens, per_second, bucket.factor),
            Bucket(tokens - granted, now, bucket.factor))


def throttled(bucket: Bucket, limit: RateLimit, now: float,
              retry_after: float | None) -> Bucket:
    """The bucket after the receiver answered 429 (with *retry_after* seconds, if it said)."""
    factor = max(bucket.factor / 2, MIN_FACTOR)
    hold = min(max(retry_after or 0.0, 0.0), MAX_HOLD_SECONDS)
    tokens = min(level(bucket, limit, now), 0.0) - hold * rate(limit, factor)
    return Bucket(tokens, now, factor)


def recovered(bucket: Bucket, limit: RateLimit, now: float, successes: int) -> Bucket:
    """The bucket after *successes* accepted deliveries: the rate climbs back a step each."""
    factor = min(bucket.factor + successes * RECOVERY_STEP, 1.0)
    return Bucket(level(bucket, limit, now), now, factor)


def observed(bucket: Bucket, limit: RateLimit, now: float, successes: int,
             throttle: bool, retry_after: float | None) -> Bucket:
    """One batch's answers from the endpoint: its successes first, then any 429."""
    after = recovered(bucket, limit, now, successes)
    return throttled(after, limit, now, retry_after) if throttle else after


def deferral(grant: Grant, index: int, spread: float, max_wait: float = 0.0) -> float:
    """Whole seconds a delivery beyond the grant waits before it is due again.

    Until its token, less *max_wait*, plus *spread* (0..1) of one token interval, in
    whole seconds rounded down: back early, a delivery still gets its token (and waits
    for it), while one back late leaves its token unused. Retry messages are grouped
    per whole second of their wait and sent for the longest wait of a group
    (:mod:`app.engine.schedule`), so whole seconds make every delivery of a group due
    when its message arrives; a large batch comes back a second's worth at a time.
    """
    return float(math.floor(max(grant.wait(index) - max_wait, 0.0) + spread / grant.rate))


__all__ = ["BUCKET_TTL_SECONDS", "MAX_BURST", "MAX_HOLD_SECONDS", "MAX_PER_SECOND",
           "MIN_BURST", "MIN_FACTOR", "MIN_PER_SECOND", "RECOVERY_STEP", "Bucket", "Grant",
           "RateLimit", "acquire", "deferral", "full", "level", "limit_of", "observed", "rate",
           "rate_limit", "recovered", "throttled"]
