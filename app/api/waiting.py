"""Per-tenant slots for test sends that keep their request open until the attempt is known.

A waiting test send holds no worker thread of the API (it awaits between short
database checks), but it still polls; one tenant may keep at most ``limit`` of them
waiting at once in one API process, so its waits never crowd out another tenant's calls.
Pure: the clock is passed in.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.errors import TooManyWaiting


class WaitSlots:
    """At most *limit* waits per tenant; a refusal says when the soonest one ends."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        #: Each tenant's waits, by the time they end at the latest.
        self._deadlines: dict[str, list[float]] = {}

    def waiting(self, tenant: str) -> int:
        with self._lock:
            return len(self._deadlines.get(tenant, ()))

    @contextmanager
    def hold(self, tenant: str, seconds: float) -> Iterator[None]:
        """Hold one of *tenant*'s slots for at most *seconds*; ``TooManyWaiting`` if none is free."""
        now = self._clock()
        deadline = now + seconds
        with self._lock:
            held = self._deadlines.setdefault(tenant, [])
            if len(held) >= self.limit:
                raise TooManyWaiting(self.limit, retry_after=max(1, math.ceil(min(held) - now)))
            held.append(deadline)
        try:
            yield
        finally:
            with self._lock:
                held = self._deadlines[tenant]
                held.remove(deadline)
                if not held:
                    del self._deadlines[tenant]
