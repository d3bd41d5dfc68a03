"""Group commit: calls from many threads at once run as one call.

A worker runs many ``hookline.deliver`` tasks at once, each with a few delivery ids
(one, when every event is published on its own). Claiming and recording each of them
in its own transaction would make the database round trips the cost of a delivery.
A :class:`Group` runs the calls that arrive while one is under way together: the
first caller leads and runs whatever is waiting as one call, the others wait for
their share, and when the leader is done the next waiting caller leads. An idle
worker adds no wait; a busy one claims and records many tasks' deliveries in one
transaction each. Only the short database steps are grouped, never the sending, so a
slow receiver never holds anyone else's claim or record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Call(Generic[T, R]):
    __slots__ = ("done", "error", "item", "lead", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False
        self.result: R | None = None
        self.error: BaseException | None = None


class Group(Generic[T, R]):
    """``group(item)`` returns ``fn([items…])[i]`` for its item, items of concurrent calls
    run together in one ``fn`` call (at most *max_items* at a time)."""

    def __init__(self, fn: Callable[[Sequence[T]], Sequence[R]], max_items: int = 64) -> None:
        self._fn = fn
        self._max_items = max_items
        self._lock = threading.Lock()
        self._pending: list[_Call[T, R]] = []
        self._busy = False

    def __call__(self, item: T) -> R:
        call: _Call[T, R] = _Call(item)
        with self._lock:
            self._pending.append(call)
            lead = not self._busy
            self._busy = True
        if not lead:
            call.done.wait()
            if not call.lead:
                return self._outcome(call)
        self._lead()
        return self._outcome(call)

    def _lead(self) -> None:
        """Run one group of waiting calls, then hand the lead to the next waiting call."""
        with self._lock:
            batch = self._pending[: self._max_items]
            del self._pending[: self._max_items]
        try:
            results = self._fn([c.item for c in batch])
            for c, result in zip(batch, results, strict=True):
                c.result = result
        except BaseException as exc:  # every call of the group sees the error
            for c in batch:
                c.error = exc
        for c in batch:
            c.lead = False
            c.done.set()
        with self._lock:
            if self._pending:
                successor = self._pending[0]
                successor.lead = True
                successor.done.set()
            else:
                self._busy = False

    @staticmethod
    def _outcome(call: _Call[T, R]) -> R:
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]
