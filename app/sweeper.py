"""The sweeper: puts back on the broker every delivery the broker does not hold.

Run periodically (``hookline beat`` schedules it). Each run, in order:

1. **Lost attempts** — ``in_flight`` rows whose lease expired (the worker died
   mid-POST): an attempt row ``WorkerLost`` is written and the delivery is due again,
   or dead-lettered as ``exhausted`` if that was its last attempt.
2. **Broker reset** — if the broker epoch key is gone (Redis flushed or restarted
   without persistence), every waiting delivery is sent again at once.
3. **Parked and stale** — due deliveries with no message (``queued_at IS NULL``:
   long backoffs and failed enqueues), and due deliveries whose message should have
   run ``redispatch_after`` ago but has not.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several sweepers
can run at once. A message sent twice is harmless: the delivery task claims a row
only from a due, claimable state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.dispatch import Dispatcher
from app.engine.schedule import ScheduledRetry, group_retries
from app.ids import new_id
from app.models import (
    CLAIMABLE_STATES,
    Attempt,
    DeadReason,
    Delivery,
    DeliveryState,
    Endpoint,
    utcnow,
)
from app.names import BROKER_EPOCH_KEY
from app.observability import recorder as metrics
from config.settings import Settings

log = logging.getLogger(__name__)


class EpochStore(Protocol):
    """The slice of a Redis client the sweeper uses to notice a broker reset."""

    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(slots=True)
class SweepReport:
    lost: int = 0
    exhausted: int = 0
    dispatched: int = 0
    broker_reset: bool = False
    failed: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        dispatcher: Dispatcher,
        epoch: EpochStore | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.epoch = epoch
        self.clock = clock
        self._key = settings.broker_key_prefix + BROKER_EPOCH_KEY

    def broker_was_reset(self) -> bool:
        """True once after the broker lost its keys; sets a fresh epoch marker."""
        if self.epoch is None:
            return False
        try:
            if self.epoch.get(self._key) is not None:
                return False
            created = self.epoch.set(self._key, new_id("epoch"), nx=True)
        except Exception as exc:
            log.warning("sweeper cannot read the broker epoch: %s", exc)
            return False
        return bool(created)

    def run(self) -> SweepReport:
        report = SweepReport()
        self._recover_lost(report)
        report.broker_reset = self.broker_was_reset()
        # After a reset, every message sent before this moment is gone.
        lost_before = self.clock() if report.broker_reset else None
        while self._dispatch_due(report, lost_before=lost_before) >= self.settings.sweep_batch:
            pass
        metrics.observe_sweep(report)
        return report

    def _recover_lost(self, report: SweepReport) -> None:
        now = self.clock()
        with transaction(self.sessions) as session:
            rows = session.execute(
                select(Delivery.id, Delivery.attempt_count, Endpoint.max_attempts)
                .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .where(Delivery.state == DeliveryState.IN_FLIGHT, Delivery.lease_expires_at < now)
                .limit(self.settings.sweep_batch)
                .with_for_update(skip_locked=True, of=Delivery)
            ).all()
            for delivery_id, attempts, endpoint_max in rows:
                session.execute(insert(Attempt).values(
                    delivery_id=delivery_id, attempt_number=attempts, started_at=now,
                    error_class="WorkerLost",
                    error_message="the worker stopped before the attempt was recorded",
                ))
                exhausted = attempts >= (endpoint_max or self.settings.max_attempts)
                values: dict[str, Any] = {"lease_expires_at": None, "updated_at": now,
                                          "last_error": "worker lost mid-attempt"}
                if exhausted:
                    values.update(state=DeliveryState.DEAD, dead_reason=DeadReason.EXHAUSTED,
                                  dead_at=now)
                    report.dead.append((delivery_id, DeadReason.EXHAUSTED))
                else:
                    values.update(state=DeliveryState.RETRY_SCHEDULED, next_attempt_at=now,
                                  queued_at=None)
                session.execute(update(Delivery).where(Delivery.id == delivery_id,
                                                       Delivery.state == DeliveryState.IN_FLIGHT)
                                .values(**values).execution_options(synchronize_session=False))
                report.lost += 1
                report.exhausted += int(exhausted)

    def _dispatch_due(self, report: SweepReport, *, lost_before: datetime | None) -> int:
        now = self.clock()
        stale = now - timedelta(seconds=self.settings.redispatch_after)
        parked_and_due = and_(Delivery.queued_at.is_(None), Delivery.next_attempt_at <= now)
        if lost_before is not None:
            # The broker lost its messages: every delivery that had one gets a new one,
            # keeping its due time (a retry that was 30 s away stays 30 s away).
            unheld = Delivery.queued_at < lost_before
        else:
            unheld = and_(Delivery.queued_at.is_not(None), Delivery.next_attempt_at <= stale)
        condition = and_(Delivery.state.in_(CLAIMABLE_STATES), or_(parked_and_due, unheld))
        with transaction(self.sessions) as session:
            rows = session.execute(
                select(Delivery.id, Delivery.endpoint_id, Delivery.next_attempt_at)
                .where(condition)
                .order_by(Delivery.next_attempt_at)
                .limit(self.settings.sweep_batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            ids = [row[0] for row in rows]
            session.execute(
                update(Delivery).where(Delivery.id.in_(ids))
                .values(queued_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            for row in rows:
                if row[2] <= stale:
                    session.execute(update(Delivery).where(Delivery.id == row[0])
                                    .values(next_attempt_at=now)
                                    .execution_options(synchronize_session=False))
        due_now = [(r[0], r[1]) for r in rows if r[2] <= now]
        later = [(r[0], r[1], (r[2] - now).total_seconds()) for r in rows if r[2] > now]
        failed = self.dispatcher.enqueue(due_now)
        retries = [ScheduledRetry(d, e, countdown) for d, e, countdown in later]
        for _queue, countdown, pairs in group_retries(retries, self.dispatcher.partitions):
            failed += self.dispatcher.schedule_many(pairs, countdown)
        if failed:
            with transaction(self.sessions) as session:
                session.execute(update(Delivery).where(Delivery.id.in_(failed))
                                .values(queued_at=None)
                                .execution_options(synchronize_session=False))
            report.failed.extend(failed)
        report.dispatched += len(rows) - len(failed)
        # A full batch sent whole means more may be waiting; any failure ends the run.
        return len(rows) if not failed else 0
