"""The retry schedule: how long to wait before the next attempt. Pure.

Exponential backoff with proportional jitter; a receiver's ``Retry-After`` wins over
the schedule, clamped to ``[1 s, retry_after_max]``. The random source and the clock
are parameters so the schedule is testable to the millisecond. ``Retry-After`` comes
from a receiver, so it is parsed defensively: anything but ASCII delta-seconds or an
HTTP-date is ignored, and no string makes the parser raise.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: The shortest wait Hookline honours, whatever a Retry-After header says.
MIN_RETRY_AFTER_SECONDS = 1.0
#: Delta-seconds as RFC 9110 writes them: ASCII digits only (``str.isdigit`` also takes
#: ``²`` and ``١``). Ten digits are over 300 years, far past any clamp.
DELTA_SECONDS_RE = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 5.0
    multiplier: float = 4.0
    max_delay_seconds: float = 6 * 3600.0
    jitter: float = 0.2
    retry_after_max_seconds: float = 3600.0

    def nominal_delay(self, attempts_made: int) -> float:
        """The delay after *attempts_made* failed attempts, before jitter (1 → base)."""
        exponent = max(attempts_made - 1, 0)
        delay = self.base_seconds * (self.multiplier**exponent)
        return min(delay, self.max_delay_seconds)

    def delay(
        self,
        attempts_made: int,
        *,
        retry_after: float | None = None,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """Seconds to wait before the next attempt."""
        if retry_after is not None:
            return min(max(retry_after, MIN_RETRY_AFTER_SECONDS), self.retry_after_max_seconds)
        nominal = self.nominal_delay(attempts_made)
        if self.jitter == 0:
            return nominal
        return nominal * uniform(1 - self.jitter, 1 + self.jitter)

    def schedule(self, max_attempts: int) -> list[float]:
        """The nominal waits between *max_attempts* attempts (one fewer than attempts)."""
        return [self.nominal_delay(n) for n in range(1, max_attempts)]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if DELTA_SECONDS_RE.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):  # e.g. a day of 10**20
        return None
