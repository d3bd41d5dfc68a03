"""Relay: pending outbox rows become events and deliveries, then messages on the partition queues.

One batch is one transaction: claim the oldest pending rows, write their events under
the rows' own event ids with the bulk path of publishing (:func:`app.fanout.record_events`:
multi-row inserts, the tenant's subscribers from a per-process cache) and mark the rows
``relayed``. After the
commit the deliveries are enqueued (:func:`app.publishing.enqueue_or_park`); what the
broker refuses is parked for the sweeper. A producer killed at any point either
committed the batch (events and ``relayed`` together) or did not (rows still
``pending``, relayed by the next producer under the same event ids). If it dies
between commit and enqueue, the sweeper re-sends those deliveries after
``HOOKLINE_REDISPATCH_AFTER``, as for :func:`app.publishing.publish`.

Claiming: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several producers take
disjoint batches, then a conditional ``UPDATE … WHERE state = 'pending'`` that is the
authority on every backend (on SQLite the lock is the database's single writer).

A row that cannot be relayed — unknown tenant, event type not in this process's
catalogue, payload over the limit — is marked ``failed`` with ``last_error`` and left
in the outbox; the rest of the batch goes on. :meth:`Relay.retry_failed` (``hookline
producer --retry-failed``) makes failed rows pending again once the cause is fixed.
A database error that a row itself causes is isolated by relaying the batch row by
row; connection loss and lock conflicts just roll the batch back for a later try.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue
from app.changefeed.models import OutboxEntry, OutboxState
from app.changefeed.outbox import notify
from app.db import transaction
from app.dispatch import Dispatcher
from app.errors import InputError, UnknownTenant
from app.fanout import ValidItem, record_events
from app.models import Environment, Event, utcnow
from app.ordering import implied_ordering_key
from app.publishing import encode_payload, enqueue_or_park
from app.subscribers import SubscriberCache

log = logging.getLogger(__name__)

#: ``last_error`` is cut to this many characters.
MAX_ERROR_LENGTH = 2000
#: Relayed rows deleted per statement when pruning, to keep each transaction short.
PRUNE_CHUNK = 5000


@dataclass(slots=True)
class RelayReport:
    """What one relay call did."""

    claimed: int = 0
    #: Event ids written now.
    relayed: list[str] = field(default_factory=list)
    #: Rows whose event already existed (marked relayed, nothing new written).
    already: list[str] = field(default_factory=list)
    #: ``(outbox row id, reason)`` of rows marked failed.
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: ``(delivery id, endpoint id)`` of the deliveries written.
    deliveries: list[tuple[str, str]] = field(default_factory=list)
    #: Delivery ids the broker refused; parked for the sweeper.
    parked: list[str] = field(default_factory=list)


class Relay:
    """Relays outbox rows to events; one instance per producer process."""

    def __init__(self, sessions: sessionmaker[Session], dispatcher: Dispatcher, catalogue: Catalogue,
                 *, max_payload_bytes: int, batch: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.catalogue = catalogue
        self.max_payload_bytes = max_payload_bytes
        self.batch = batch
        self.clock = clock
        self.subscribers = SubscriberCache()

    def relay_batch(self) -> RelayReport:
        """Relay up to ``batch`` pending rows, oldest first, in one transaction; then enqueue."""
        report = RelayReport()
        claimed: list[int] = []
        try:
            with transaction(self.sessions) as session:
                rows = self._claim(session, limit=self.batch)
                claimed = [row.id for row in rows]
                self._relay_rows(session, rows, report)
        except SQLAlchemyError as exc:
            if not claimed or _transient(exc):
                raise
            log.warning("relaying %d outbox rows failed (%s); relaying them one by one",
                        len(claimed), exc.__class__.__name__)
            report = self._one_by_one(claimed)
        report.parked = enqueue_or_park(self.sessions, self.dispatcher, report.deliveries)
        return report

    def retry_failed(self, ids: Sequence[int] | None = None) -> int:
        """Make failed rows (all, or those in *ids*) pending again; returns how many."""
        with transaction(self.sessions) as session:
            statement = update(OutboxEntry).where(OutboxEntry.state == OutboxState.FAILED)
            if ids is not None:
                statement = statement.where(OutboxEntry.id.in_(list(ids)))
            count = session.connection().execute(
                statement.values(state=OutboxState.PENDING, last_error=None)).rowcount
            if count:
                notify(session.connection())
        return int(count or 0)

    def prune(self, before: datetime) -> int:
        """Delete relayed rows relayed before *before* (their events hold the record); returns how many."""
        total = 0
        while True:
            with transaction(self.sessions) as session:
                chunk = select(OutboxEntry.id).where(OutboxEntry.state == OutboxState.RELAYED,
                                                     OutboxEntry.relayed_at < before
                                                     ).limit(PRUNE_CHUNK).scalar_subquery()
                deleted = int(session.connection().execute(
                    delete(OutboxEntry).where(OutboxEntry.id.in_(chunk))).rowcount or 0)
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    def counts(self) -> dict[str, int]:
        """Outbox rows per state."""
        with transaction(self.sessions) as session:
            rows = session.execute(select(OutboxEntry.state, func.count())
                                   .group_by(OutboxEntry.state)).all()
        return {str(state): int(n) for state, n in rows}

    # -- inside the transaction ------------------------------------------------------
    def _claim(self, session: Session, *, limit: int, ids: Sequence[int] | None = None
               ) -> list[Row[Any]]:
        query = (select(OutboxEntry.id, OutboxEntry.event_id, OutboxEntry.tenant_ref,
                        OutboxEntry.event_type, OutboxEntry.payload, OutboxEntry.occurred_at)
                 .where(OutboxEntry.state == OutboxState.PENDING))
        if ids is not None:
            query = query.where(OutboxEntry.id.in_(list(ids)))
        rows = session.execute(query.order_by(OutboxEntry.id).limit(limit)
                               .with_for_update(skip_locked=True)).all()
        if not rows:
            return []
        owned = set(session.scalars(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_([row.id for row in rows]),
                   OutboxEntry.state == OutboxState.PENDING)
            .values(state=OutboxState.RELAYED, relayed_at=self.clock(), last_error=None)
            .returning(OutboxEntry.id)
            .execution_options(synchronize_session=False)))
        return [row for row in rows if row.id in owned]

    def _relay_rows(self, session: Session, rows: Sequence[Row[Any]], report: RelayReport) -> None:
        report.claimed += len(rows)
        if not rows:
            return
        existing = set(session.scalars(select(Event.id).where(Event.id.in_([r.event_id for r in rows]))))
        by_tenant: dict[str, list[tuple[Any, ValidItem]]] = {}
        for index, row in enumerate(rows):
            if row.event_id in existing:
                report.already.append(row.event_id)
                continue
            try:
                declared = self.catalogue.require(row.event_type)
                payload = encode_payload(row.payload, self.max_payload_bytes)
                ordering_key = implied_ordering_key(declared.ordering_field, payload)
            except InputError as exc:
                self._fail(session, row.id, str(exc), report)
                continue
            by_tenant.setdefault(row.tenant_ref, []).append(
                (row, ValidItem(index, row.event_type, payload, None, row.occurred_at,
                                event_id=row.event_id, ordering_key=ordering_key)))
        connection = session.connection()
        for tenant_ref, group in by_tenant.items():
            try:
                results, deliveries = record_events(connection, self.subscribers, tenant_ref,
                                                    Environment.PRODUCTION, [v for _, v in group])
            except UnknownTenant as exc:
                for row, _ in group:
                    self._fail(session, row.id, str(exc), report)
                continue
            report.relayed.extend(results[v.index].event_id or "" for _, v in group)
            report.deliveries.extend((d["id"], d["endpoint_id"]) for d in deliveries)

    def _fail(self, session: Session, row_id: int, reason: str, report: RelayReport) -> None:
        session.execute(update(OutboxEntry).where(OutboxEntry.id == row_id)
                        .values(state=OutboxState.FAILED, relayed_at=None,
                                last_error=reason[:MAX_ERROR_LENGTH])
                        .execution_options(synchronize_session=False))
        report.failed.append((row_id, reason))
        log.warning("outbox row %d cannot be relayed: %s", row_id, reason)

    def _one_by_one(self, ids: Sequence[int]) -> RelayReport:
        """Relay *ids* each in its own transaction; a row whose own transaction fails is marked failed."""
        report = RelayReport()
        for row_id in ids:
            try:
                with transaction(self.sessions) as session:
                    self._relay_rows(session, self._claim(session, limit=1, ids=[row_id]), report)
            except SQLAlchemyError as exc:
                if _transient(exc):
                    raise
                reason = f"{exc.__class__.__name__}: {exc}"
                with transaction(self.sessions) as session:
                    self._fail(session, row_id, reason, report)
        return report


def _transient(exc: SQLAlchemyError) -> bool:
    """Connection loss, lock or serialisation conflicts: worth trying the same batch again."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
