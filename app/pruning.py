"""Pruning (SQL): attempts and event payloads older than their tenant's retention go.

What is pruned, past ``HOOKLINE_RETENTION_DAYS`` (or the tenant's ``retention_days``):

* **attempts** (with their response excerpts and errors) of final deliveries: deleted;
* **event payloads** whose deliveries are all final: ``payload`` set to NULL and
  ``pruned_at`` stamped. The event row and its deliveries stay, with their states,
  attempt counts, last status and last error, so the log still says what happened.

A delivery that is pending, retrying or in flight is never pruned: neither its
attempts nor its event's payload. Each table is walked in primary-key order, one
short transaction per batch of ``HOOKLINE_PRUNE_BATCH`` rows (read the batch, delete
or update the rows past their horizon, commit), so no lock is held for long and
delivery keeps its pace; every write re-checks that the deliveries are still final.
Keys are time-ordered, so the walk stops at the first batch that is newer than every
tenant's horizon (:func:`app.retention.walk_finished`).

Why not time-partitioned ``attempts`` on PostgreSQL: dropping a partition would be
cheaper than deleting rows, but a partition holds every tenant's attempts and those
of deliveries still retrying, so per-tenant retention and the "never prune a
delivery that is not final" rule would still need row deletes; partitioning would
also make ``started_at`` part of the primary key and add partition upkeep. The batch
delete is measured against delivery throughput in ``bench/prune.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, delete, exists, not_, null, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.models import FINAL_STATES, Attempt, Delivery, Event, Tenant, utcnow
from app.publishing import resolve_tenant
from app.retention import Horizon, WalkRow, check_retention_days, prunable, walk_finished


@dataclass(slots=True)
class PruneReport:
    attempts: int = 0
    events: int = 0
    batches: int = 0


def horizon_now(engine: Engine, default_days: int, *, now: datetime | None = None) -> Horizon:
    """Every tenant's horizon as of *now*: the default and the tenants' overrides."""
    with engine.connect() as conn:
        overrides = {tenant_id: days for tenant_id, days in conn.execute(
            select(Tenant.id, Tenant.retention_days).where(Tenant.retention_days.is_not(None)))
            if days is not None}
    return Horizon(now=now or utcnow(), default_days=default_days, overrides=overrides)


def _prune_attempts(engine: Engine, horizon: Horizon, batch: int, report: PruneReport,
                    pause: float) -> None:
    cursor = 0
    while True:
        with engine.begin() as conn:
            rows = [WalkRow(key=a_id, tenant_id=tenant_id, at=started_at,
                            final=state in FINAL_STATES)
                    for a_id, started_at, tenant_id, state in conn.execute(
                        select(Attempt.id, Attempt.started_at, Delivery.tenant_id, Delivery.state)
                        .join(Delivery, Delivery.id == Attempt.delivery_id)
                        .where(Attempt.id > cursor).order_by(Attempt.id).limit(batch))]
            doomed = prunable(rows, horizon)
            if doomed:
                result = conn.execute(
                    delete(Attempt)
                    .where(Attempt.id.in_(doomed),
                           exists().where(Delivery.id == Attempt.delivery_id,
                                          Delivery.state.in_(FINAL_STATES)))
                    .execution_options(synchronize_session=False))
                report.attempts += result.rowcount or 0
        report.batches += 1
        if walk_finished(rows, horizon, batch):
            return
        cursor = int(rows[-1].key)
        if pause:
            time.sleep(pause)


def _prune_events(engine: Engine, horizon: Horizon, batch: int, report: PruneReport,
                  pause: float) -> None:
    active = exists().where(Delivery.event_id == Event.id, Delivery.state.not_in(FINAL_STATES))
    cursor = ""
    while True:
        with engine.begin() as conn:
            rows = [WalkRow(key=e_id, tenant_id=tenant_id, at=created_at, final=not busy)
                    for e_id, tenant_id, created_at, busy in conn.execute(
                        select(Event.id, Event.tenant_id, Event.created_at, active)
                        .where(Event.id > cursor, Event.pruned_at.is_(None))
                        .order_by(Event.id).limit(batch))]
            doomed = prunable(rows, horizon)
            if doomed:
                result = conn.execute(
                    update(Event)
                    .where(and_(Event.id.in_(doomed), Event.pruned_at.is_(None), not_(active)))
                    .values(payload=null(), pruned_at=horizon.now)
                    .execution_options(synchronize_session=False))
                report.events += result.rowcount or 0
        report.batches += 1
        if walk_finished(rows, horizon, batch):
            return
        cursor = str(rows[-1].key)
        if pause:
            time.sleep(pause)


def prune(engine: Engine, *, default_days: int, batch: int, pause: float = 0.0,
          clock: Callable[[], datetime] = utcnow) -> PruneReport:
    """Prune attempts, then event payloads, past each tenant's horizon; idempotent.

    *pause* seconds are slept between batches, to leave the database more room still.
    """
    horizon = horizon_now(engine, default_days, now=clock())
    report = PruneReport()
    _prune_attempts(engine, horizon, batch, report, pause)
    _prune_events(engine, horizon, batch, report, pause)
    return report


def set_retention(sessions: sessionmaker[Session], tenant: str, days: int | None) -> Tenant:
    """Set a tenant's retention in days; None returns it to ``HOOKLINE_RETENTION_DAYS``."""
    days = check_retention_days(days)
    with transaction(sessions) as session:
        row = resolve_tenant(session, tenant)
        row.retention_days = days
        return row


def get_retention(sessions: sessionmaker[Session], tenant: str) -> Tenant:
    with transaction(sessions) as session:
        return resolve_tenant(session, tenant)
