"""How many deliveries one worker process works on at once.

Every thread of the pool runs a batch, so threads × batch size deliveries could be
claimed, rendered and in flight together, and that is the worker's memory. A batch
takes a permit per delivery before it claims (waiting while the process is full) and
gives each one back as soon as that delivery no longer needs its request: when it
was skipped, decided without a request, or answered. A delivery held by a slow
receiver keeps only its own permit, never its batch's.
"""

from __future__ import annotations

import threading


class Capacity:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._free = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    def take(self, count: int) -> int:
        """Wait until *count* permits are free (or all are, for a batch over the limit)."""
        count = min(count, self.limit)
        with self._free:
            while self._used + count > self.limit:
                self._free.wait()
            self._used += count
        return count

    def give(self, count: int) -> None:
        if count <= 0:
            return
        with self._free:
            self._used = max(self._used - count, 0)
            self._free.notify_all()


class Permits:
    """One batch's permits: given back one by one, and the rest at the end."""

    def __init__(self, capacity: Capacity, count: int) -> None:
        self._capacity = capacity
        self._left = capacity.take(count)
        self._lock = threading.Lock()

    def give(self, count: int = 1) -> None:
        with self._lock:
            count = min(count, self._left)
            self._left -= count
        self._capacity.give(count)

    def give_all(self) -> None:
        self.give(self._left)
