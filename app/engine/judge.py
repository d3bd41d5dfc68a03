"""Step 4, judge: what one attempt's result means for its delivery. Pure.

Takes the claim, the result (or the error that stopped the attempt before a result
existed) and the clock, and returns a :class:`Decision`: succeeded, retry (in the
broker or parked in SQL), dead with a reason, or deferred (no attempt was made).
The status table is :mod:`app.classification`, the waits :mod:`app.retry_policy`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.classification import TransportError, Verdict, classify
from app.models import DeadReason
from app.retry_policy import RetryPolicy, parse_retry_after
from app.transport import HttpResult


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    DEAD = "dead"
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    #: When the next attempt is due (retry, deferred).
    next_attempt_at: datetime | None = None
    #: Seconds until then; the broker holds the wait if it is short enough.
    delay: float = 0.0
    dead_reason: DeadReason | None = None
    #: The endpoint must be switched off (410 Gone).
    disable_endpoint: bool = False
    error: str | None = None
    #: The HTTP status the attempt got, if any.
    status: int | None = None


def describe(result: HttpResult) -> str | None:
    """The delivery's ``last_error`` for *result* (None for a 2xx)."""
    if result.status is None:
        return f"{result.error_class}: {result.error_message}"
    if 200 <= result.status < 300:
        return None
    return f"HTTP {result.status}"


def header(headers: Mapping[str, Any], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if str(key).lower() == lowered:
            return str(value)
    return None


def judge(result: HttpResult, *, attempt_number: int, max_attempts: int, now: datetime,
          policy: RetryPolicy, uniform: Callable[[float, float], float]) -> Decision:
    """The decision after one attempt that produced *result*."""
    verdict = classify(result.status, result.error)
    error = describe(result)
    status = result.status
    if verdict is Verdict.SUCCEEDED:
        return Decision(Outcome.SUCCEEDED, status=status)
    if verdict in (Verdict.PERMANENT, Verdict.PERMANENT_DISABLE):
        reason = (DeadReason.PERMANENT_4XX if result.status is not None
                  else DeadReason.BLOCKED_DESTINATION if result.error is TransportError.BLOCKED
                  else DeadReason.PERMANENT_ERROR)
        return Decision(Outcome.DEAD, dead_reason=reason, error=error, status=status,
                        disable_endpoint=verdict is Verdict.PERMANENT_DISABLE)
    if attempt_number >= max_attempts:
        return Decision(Outcome.DEAD, dead_reason=DeadReason.EXHAUSTED, error=error,
                        status=status)
    retry_after = parse_retry_after(header(result.headers, "Retry-After"), now=now)
    delay = policy.delay(attempt_number, retry_after=retry_after, uniform=uniform)
    return Decision(Outcome.RETRY, next_attempt_at=now + timedelta(seconds=delay), delay=delay,
                    error=error, status=status)


def deferred(until: datetime, now: datetime, why: str) -> Decision:
    """No attempt was made; the delivery is due again at *until*."""
    return Decision(Outcome.DEFERRED, next_attempt_at=until,
                    delay=max((until - now).total_seconds(), 0.0), error=f"deferred: {why}")
