"""Dead letters: list them and requeue them. Shared by the CLI and, later, the HTTP API.

Requeue is idempotent: it moves rows from ``dead`` back to ``pending`` with a fresh
attempt budget, so running it twice finds nothing the second time and delivers once.
Deliveries whose endpoint is still disabled are left dead and reported: requeueing
them would only dead-letter them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.db import transaction
from app.dispatch import Dispatcher
from app.errors import InvalidSelection
from app.models import DeadReason, Delivery, DeliveryState, Endpoint, Event, utcnow
from app.publishing import enqueue_or_park

REQUEUE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    endpoint_id: str | None = None
    event_type: str | None = None
    reason: str | None = None
    since: datetime | None = None
    tenant_id: str | None = None

    def __post_init__(self) -> None:
        if self.reason is not None and self.reason not in {r.value for r in DeadReason}:
            known = ", ".join(r.value for r in DeadReason)
            raise InvalidSelection(f"unknown reason {self.reason!r} (known: {known})")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery_id: str
    event_id: str
    event_type: str
    endpoint_id: str
    endpoint_url: str
    reason: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    dead_at: datetime | None
    #: An ordered endpoint's key: later deliveries of it went on without this one.
    ordering_key: str | None = None
    #: How many later deliveries of that key to the same endpoint there are.
    later_deliveries: int = 0


@dataclass(slots=True)
class RequeueReport:
    matched: int = 0
    requeued: list[str] = field(default_factory=list)
    skipped_disabled: list[str] = field(default_factory=list)
    not_dead: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    dry_run: bool = False


def _later_deliveries() -> Any:
    """SQL: the later deliveries of a dead letter's ordering key, which went on without it."""
    later = aliased(Delivery)
    count = (select(func.count()).where(later.endpoint_id == Delivery.endpoint_id,
                                        later.ordering_key == Delivery.ordering_key,
                                        later.position > Delivery.position)
             .correlate(Delivery).scalar_subquery())
    return case((Delivery.ordering_key.is_(None), 0), else_=count)


def _query(flt: DeadLetterFilter) -> Select[Delivery, Event, Endpoint]:
    query = (
        select(Delivery, Event, Endpoint)
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.state == DeliveryState.DEAD)
    )
    if flt.endpoint_id:
        query = query.where(Delivery.endpoint_id == flt.endpoint_id)
    if flt.event_type:
        query = query.where(Event.event_type == flt.event_type)
    if flt.reason:
        query = query.where(Delivery.dead_reason == flt.reason)
    if flt.since:
        query = query.where(Delivery.dead_at >= flt.since)
    if flt.tenant_id:
        query = query.where(Delivery.tenant_id == flt.tenant_id)
    return query.order_by(Delivery.id)


def list_dead_letters(
    sessions: sessionmaker[Session], flt: DeadLetterFilter, *, limit: int | None = None,
    after: str | None = None,
) -> list[DeadLetter]:
    """Dead letters matching *flt*, oldest delivery first; *after* is a page cursor (an id)."""
    with transaction(sessions) as session:
        query = _query(flt).add_columns(_later_deliveries())
        if after is not None:
            query = query.where(Delivery.id > after)
        if limit is not None:
            query = query.limit(limit)
        return [
            DeadLetter(
                delivery_id=d.id, event_id=e.id, event_type=e.event_type, endpoint_id=ep.id,
                endpoint_url=ep.url, reason=d.dead_reason or "", attempts=d.attempt_count,
                last_status_code=d.last_status_code, last_error=d.last_error, dead_at=d.dead_at,
                ordering_key=d.ordering_key, later_deliveries=int(later or 0),
            )
            for d, e, ep, later in session.execute(query).all()
        ]


def requeue(
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    *,
    ids: Sequence[str] = (),
    select_all: bool = False,
    flt: DeadLetterFilter | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RequeueReport:
    """Move dead letters back to ``pending`` and enqueue them. Ids, or a filter, or ``--all``."""
    flt = flt or DeadLetterFilter()
    has_filter = any(v is not None for v in (flt.endpoint_id, flt.event_type, flt.reason, flt.since))
    if not ids and not select_all and not has_filter:
        raise InvalidSelection("name delivery ids, a filter, or --all")
    if ids and select_all:
        raise InvalidSelection("give delivery ids or --all, not both")
    report = RequeueReport(dry_run=dry_run)
    with transaction(sessions) as session:
        query = _query(flt)
        if ids:
            query = query.where(Delivery.id.in_(list(ids)))
        rows = session.execute(query).all()
        if ids:
            unknown = set(ids) - {d.id for d, _, _ in rows}
            if unknown:
                visible = select(Delivery.id).where(Delivery.id.in_(unknown))
                if flt.tenant_id:  # another tenant's ids are "no such delivery"
                    visible = visible.where(Delivery.tenant_id == flt.tenant_id)
                present = set(session.scalars(visible))
                missing = sorted(unknown - present)
                if missing:
                    raise InvalidSelection(f"no such delivery: {', '.join(missing)}")
                report.not_dead.extend(sorted(present))
    report.matched = len(rows)
    candidates: list[tuple[str, str]] = []
    for delivery, _event, endpoint in rows:
        if not endpoint.enabled:
            report.skipped_disabled.append(delivery.id)
        else:
            candidates.append((delivery.id, endpoint.id))
    if dry_run:
        report.requeued = [c[0] for c in candidates]
        return report
    for start in range(0, len(candidates), REQUEUE_CHUNK):
        chunk = candidates[start : start + REQUEUE_CHUNK]
        now = utcnow()
        with transaction(sessions) as session:
            moved = set(session.scalars(
                update(Delivery)
                .where(Delivery.id.in_([c[0] for c in chunk]),
                       Delivery.state == DeliveryState.DEAD)
                .values(state=DeliveryState.PENDING, attempt_count=0, next_attempt_at=now,
                        queued_at=now, dead_reason=None, dead_at=None, lease_expires_at=None,
                        requeue_count=Delivery.requeue_count + 1, updated_at=now)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            ))
        # A concurrent requeue may have taken some rows first; only ours are sent.
        mine = [c for c in chunk if c[0] in moved]
        report.requeued.extend(c[0] for c in mine)
        report.parked.extend(enqueue_or_park(sessions, dispatcher, mine))
        if progress is not None:
            progress(len(chunk))
    return report
