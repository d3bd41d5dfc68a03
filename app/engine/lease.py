"""Leases kept alive: a worker process renews the leases of the deliveries it holds.

A claimed delivery is ``in_flight`` with a lease of ``HOOKLINE_LEASE_SECONDS``. While the
process lives, one thread extends the leases of everything it has claimed and not yet
recorded, every third of a lease. A process that dies (SIGKILL, OOM, power) stops
renewing, so its deliveries' leases run out within one lease, whatever the receivers'
timeouts, and the sweeper makes them due again. A lease is therefore a heartbeat, not
a guess at how long an attempt may take.

Renewal failures (the database is away) are logged and retried on the next beat; if the
database stays away longer than a lease, the sweeper may later hand a delivery to a
second worker while the first is still sending it: a duplicate, never a loss.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from app.models import Delivery, DeliveryState

log = logging.getLogger(__name__)

def _renew_statement() -> Any:
    """Extend the leases of the given in-flight rows, skipping rows another transaction
    holds (the batch's own record is finishing them): the renewal never waits on a row
    lock, so it can never deadlock with a record."""
    held = (
        select(Delivery.id)
        .where(Delivery.id.in_(bindparam("ids", expanding=True)),
               Delivery.state == DeliveryState.IN_FLIGHT,
               Delivery.lease_expires_at < bindparam("until"))
        .with_for_update(skip_locked=True)
    )
    return (update(Delivery).where(Delivery.id.in_(held.scalar_subquery()))
            .values(lease_expires_at=bindparam("until"))
            .execution_options(synchronize_session=False))


_RENEW = _renew_statement()


class Leases:
    """The deliveries this process holds, and the thread that keeps their leases."""

    def __init__(self, engine: Engine, seconds: float, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.seconds = seconds
        self.clock = clock
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, delivery_ids: Iterable[str]) -> None:
        with self._lock:
            for delivery_id in delivery_ids:
                self._held[delivery_id] = self._held.get(delivery_id, 0) + 1
        self._ensure_thread()

    def release(self, delivery_ids: Iterable[str]) -> None:
        with self._lock:
            for delivery_id in delivery_ids:
                left = self._held.get(delivery_id, 0) - 1
                if left > 0:
                    self._held[delivery_id] = left
                else:
                    self._held.pop(delivery_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def renew(self) -> int:
        """Extend every held lease to a full lease from now; the rows renewed."""
        ids = self.held()
        if not ids:
            return 0
        until = self.clock() + timedelta(seconds=self.seconds)
        renewed = 0
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 1000):
                result = conn.execute(_RENEW, {"ids": ids[start:start + 1000], "until": until})
                renewed += result.rowcount or 0
        return renewed

    def _ensure_thread(self) -> None:
        # After a fork the parent's thread is gone: start this process's own.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="hookline-leases",
                                            daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        interval = max(self.seconds / 3.0, 0.2)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception as exc:  # the database is away: the next beat tries again
                log.warning("renewing %d lease(s) failed: %s", len(self._held), exc)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)
        self._thread = None
