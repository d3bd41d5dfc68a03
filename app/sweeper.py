"""The sweeper: puts back on the broker every delivery the broker does not hold.

Run periodically (``hookline beat`` schedules it). Each run, in order:

1. **Lost attempts**: ``in_flight`` rows whose lease ran out. Leases are renewed by
   their worker while it lives (:mod:`app.engine.lease`), so an expired one means the
   worker died mid-attempt: an attempt row ``WorkerLost`` is written and the delivery
   is sent again at once, alone in its message (a delivery that kills its worker then
   takes no others with it), or dead-lettered ``exhausted`` if that was its last attempt.
2. **Broker reset**: if the broker epoch key is gone (Redis flushed or restarted
   without persistence), every waiting delivery is first marked as having no message
   (``queued_at = NULL``) in SQL, and only then is a new epoch key set. A run that
   fails in between leaves the key missing, so the next run does it again.
3. **Parked and due**: due deliveries with no message (long backoffs, failed sends,
   step 2) are sent.
4. **Lost messages**: a delivery due for ``HOOKLINE_LOST_AFTER`` seconds, sent before
   the oldest message still waiting in its queue (:mod:`app.broker_view`), was taken
   from the queue and not claimed: a worker died holding it (prefetched, or a
   countdown retry waiting in its memory), or the message was dropped. It is sent
   again. Where the broker cannot say (no horizon), ``HOOKLINE_REDISPATCH_AFTER`` is
   the net.

Before step 3, a separate step for ordered endpoints (:mod:`app.engine.ordering`):
a delivery blocked behind an earlier one of its ordering key whose predecessors have
all finished is unblocked and parked, so step 3 sends it.

After step 1, **auto-disable** (:mod:`app.auto_disable`): endpoints that have failed
continuously for ``HOOKLINE_AUTO_DISABLE_AFTER`` are disabled and
``hookline.endpoint.disabled`` is written with them; step 1's ``exhausted`` dead
letters are announced as ``hookline.delivery.exhausted`` (:mod:`app.announce`).

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several sweepers
can run at once. A message sent twice is harmless: the delivery task claims a row
only from a due, claimable state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app import announce
from app.auto_disable import disable_failing
from app.broker_view import QueueHorizons
from app.db import transaction
from app.dispatch import Dispatcher
from app.engine.ordering import release_stranded
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
from app.names import BROKER_EPOCH_KEY, partition_queue
from app.observability import recorder as metrics
from app.partitioning import queue_for
from config.settings import Settings

log = logging.getLogger(__name__)

#: Seconds of clock difference allowed between the hosts that send and sweep.
CLOCK_SLACK = 2.0


class EpochStore(Protocol):
    """The slice of a Redis client the sweeper uses to notice a broker reset."""

    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(slots=True)
class SweepReport:
    lost: int = 0
    exhausted: int = 0
    dispatched: int = 0
    #: Of ``dispatched``: deliveries whose message was lost (step 4).
    resent: int = 0
    broker_reset: bool = False
    #: Endpoints disabled for failing continuously too long.
    disabled: int = 0
    #: Blocked deliveries of ordered keys found free to go (sent by step 3).
    released: int = 0
    failed: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        dispatcher: Dispatcher,
        epoch: EpochStore | None = None,
        horizons: QueueHorizons | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.epoch = epoch
        self.horizons = horizons
        self.clock = clock
        self._key = settings.broker_key_prefix + BROKER_EPOCH_KEY

    def broker_was_reset(self) -> bool:
        """True once after the broker lost its keys.

        Every waiting delivery is first marked in SQL as having no message; the new
        epoch key is set only after that commits, so a failure in between (the
        database restarting too) is noticed again by the next run.
        """
        if self.epoch is None:
            return False
        try:
            if self.epoch.get(self._key) is not None:
                return False
        except Exception as exc:
            log.warning("sweeper cannot read the broker epoch: %s", exc)
            return False
        with transaction(self.sessions) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.state.in_(CLAIMABLE_STATES), Delivery.queued_at.is_not(None))
                .values(queued_at=None)
                .execution_options(synchronize_session=False))
        try:
            self.epoch.set(self._key, new_id("epoch"), nx=True)
        except Exception as exc:
            log.warning("sweeper cannot set the broker epoch: %s", exc)
        return True

    def run(self) -> SweepReport:
        report = SweepReport()
        self._recover_lost(report)
        self._auto_disable(report)
        report.broker_reset = self.broker_was_reset()
        self._release_ordered(report)
        while self._dispatch_due(report) >= self.settings.sweep_batch:
            pass
        self._resend_lost(report)
        metrics.observe_sweep(report)
        return report

    def _recover_lost(self, report: SweepReport) -> None:
        now = self.clock()
        again: list[tuple[str, str]] = []
        with transaction(self.sessions) as session:
            rows = session.execute(
                select(Delivery.id, Delivery.attempt_count, Endpoint.max_attempts,
                       Delivery.endpoint_id)
                .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .where(Delivery.state == DeliveryState.IN_FLIGHT, Delivery.lease_expires_at < now)
                .limit(self.settings.sweep_batch)
                .with_for_update(skip_locked=True, of=Delivery)
            ).all()
            for delivery_id, attempts, endpoint_max, endpoint_id in rows:
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
                                  queued_at=now)
                    again.append((delivery_id, endpoint_id))
                session.execute(update(Delivery).where(Delivery.id == delivery_id,
                                                       Delivery.state == DeliveryState.IN_FLIGHT)
                                .values(**values).execution_options(synchronize_session=False))
                report.lost += 1
                report.exhausted += int(exhausted)
            dead = [delivery_id for delivery_id, _ in report.dead]
            conn = session.connection()
            announced = announce.announce(
                conn, lambda: announce.exhausted_notices(conn, dead, now=now),
                now=now) if dead else []
        report.dispatched += len(announced)
        announce.send(self.dispatcher, announced, lambda ids: self._send_or_park(ids, report))
        # Alone in its message: if this delivery is what killed the worker, it kills
        # only its own next attempt.
        self._send_or_park(self.dispatcher.enqueue_each(again), report)
        report.dispatched += len(again)

    def _auto_disable(self, report: SweepReport) -> None:
        """Disable the endpoints failing for ``HOOKLINE_AUTO_DISABLE_AFTER``, announcing each;
        an error is logged and the sweep goes on."""
        if self.settings.auto_disable_after <= 0:
            return
        now = self.clock()
        try:
            with transaction(self.sessions) as session:
                conn = session.connection()
                notices = disable_failing(conn, now=now,
                                          after_seconds=self.settings.auto_disable_after,
                                          limit=self.settings.sweep_batch)
                announced = announce.announce(conn, lambda: notices, now=now) if notices else []
        except Exception:
            log.exception("auto-disabling failing endpoints failed; the sweep goes on")
            return
        for notice in notices:
            log.warning("endpoint %s disabled: %s", notice.subject_endpoint_id,
                        notice.data.get("reason"))
        report.disabled += len(notices)
        report.dispatched += len(announced)
        announce.send(self.dispatcher, announced, lambda ids: self._send_or_park(ids, report))

    def _send_or_park(self, failed: list[str], report: SweepReport) -> None:
        if failed:
            with transaction(self.sessions) as session:
                session.execute(update(Delivery).where(Delivery.id.in_(failed))
                                .values(queued_at=None)
                                .execution_options(synchronize_session=False))
            report.failed.extend(failed)
            report.dispatched -= len(failed)

    def _release_ordered(self, report: SweepReport) -> None:
        """Ordered keys: blocked deliveries whose predecessors all finished, parked for
        step 3 (the engine releases them itself unless a worker died in between)."""
        with transaction(self.sessions) as session:
            report.released = release_stranded(session.connection(), now=self.clock())

    def _dispatch_due(self, report: SweepReport) -> int:
        """Send the parked deliveries that are due (and those a broker reset unqueued, at
        their due time); the number taken, so the caller knows whether to go on."""
        now = self.clock()
        condition = and_(Delivery.state.in_(CLAIMABLE_STATES), Delivery.queued_at.is_(None),
                         Delivery.blocked.is_(False),  # waits for its key (ordering)
                         Delivery.next_attempt_at <= now + timedelta(
                             seconds=self.settings.broker_countdown_max))
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
            session.execute(
                update(Delivery).where(Delivery.id.in_([row[0] for row in rows]))
                .values(queued_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        before = len(report.failed)
        self._send(rows, now, report)
        # A full batch sent whole means more may be waiting; any failure ends the run.
        return len(rows) if len(report.failed) == before else 0

    def _send(self, rows: Sequence[Any], now: datetime, report: SweepReport) -> None:
        """Due rows now; the others as countdowns, grouped per queue and second."""
        due_now = [(r[0], r[1]) for r in rows if r[2] <= now]
        later = [ScheduledRetry(r[0], r[1], (r[2] - now).total_seconds())
                 for r in rows if r[2] > now]
        failed = self.dispatcher.enqueue(due_now)
        for _queue, countdown, pairs in group_retries(later, self.dispatcher.partitions):
            failed += self.dispatcher.schedule_many(pairs, countdown)
        report.dispatched += len(rows)
        self._send_or_park(failed, report)

    def _horizons(self) -> dict[str, float | None]:
        if self.horizons is None:
            return {}
        queues = [partition_queue(i) for i in range(self.settings.partitions)]
        try:
            return self.horizons.horizons(queues)
        except Exception as exc:
            log.warning("sweeper cannot read the queues: %s", exc)
            return {}

    def _resend_lost(self, report: SweepReport) -> None:
        """Due deliveries whose message left its queue and was never claimed."""
        now = self.clock()
        stale = now - timedelta(seconds=self.settings.redispatch_after)
        due_before = now - timedelta(seconds=self.settings.lost_after)
        horizons = self._horizons()
        known = [h for h in horizons.values() if h is not None]
        # Due, and its message sent, that long ago (a message sent a moment ago, such as
        # an ordered key's next delivery released just now, has not had its chance).
        unheld: Any = and_(Delivery.next_attempt_at <= stale, Delivery.queued_at <= stale)
        if known:
            newest = datetime.fromtimestamp(max(known) - CLOCK_SLACK, UTC)
            # Due, and its message sent, at least lost_after ago: a message sent a
            # moment ago (a key's next delivery released just now) is not lost.
            unheld = or_(unheld, and_(Delivery.next_attempt_at <= due_before,
                                      Delivery.queued_at <= due_before,
                                      Delivery.queued_at < newest))
        condition = and_(Delivery.state.in_(CLAIMABLE_STATES), Delivery.queued_at.is_not(None),
                         unheld)
        with transaction(self.sessions) as session:
            rows = session.execute(
                select(Delivery.id, Delivery.endpoint_id, Delivery.next_attempt_at,
                       Delivery.queued_at)
                .where(condition)
                .order_by(Delivery.next_attempt_at)
                .limit(self.settings.sweep_batch)
                .with_for_update(skip_locked=True)
            ).all()
            lost = [row for row in rows if row[3] is not None and (
                (row[2] <= stale and row[3] <= stale)
                or self._left_queue(row[1], row[3], horizons))]
            if not lost:
                return
            session.execute(
                update(Delivery).where(Delivery.id.in_([row[0] for row in lost]))
                .values(queued_at=now, updated_at=now)
                .execution_options(synchronize_session=False))
        report.resent += len(lost)
        self._send(lost, now, report)

    def _left_queue(self, endpoint_id: str, queued_at: datetime,
                    horizons: dict[str, float | None]) -> bool:
        horizon = horizons.get(queue_for(endpoint_id, self.settings.partitions))
        return horizon is not None and queued_at.timestamp() < horizon - CLOCK_SLACK
