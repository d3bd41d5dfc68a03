"""What the console reads: delivery lists, one delivery, throughput and endpoint health.

Rows become the API's own bodies (:mod:`app.api.views`), so the console shows what the
API returns; the listing of endpoints is :func:`app.admin.list_endpoints`. A tenant
viewer's queries are always narrowed to its tenant: a row of another tenant is as
absent as one that does not exist. SQL reads only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app import admin
from app.api import schemas, views
from app.console.filters import DeliveryFilter
from app.db import transaction
from app.models import Attempt, Delivery, DeliveryState, Endpoint, Event

PAGE_SIZE = 50
#: Throughput is counted over this trailing window.
RATE_WINDOW = timedelta(seconds=10)
#: Endpoint health looks at this much recent history.
HEALTH_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    view: schemas.DeliveryView
    tenant_id: str
    endpoint_url: str


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    rows: list[DeliveryRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What rendering reads of an event, as plain values."""

    id: str
    event_type: str
    tenant_id: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    ordering_key: str | None = None
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    row: DeliveryRow
    endpoint: Endpoint
    event: EventFacts


@dataclass(frozen=True, slots=True)
class Throughput:
    """Rates over the last :data:`RATE_WINDOW`, and what is waiting now."""

    window_seconds: float
    delivered_per_second: float
    attempts_per_second: float
    failed_attempts_per_second: float
    waiting: int
    in_flight: int
    dead: int


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    endpoint: Endpoint
    attempts: int
    succeeded: int
    last_error: str | None
    last_error_at: datetime | None

    @property
    def success_ratio(self) -> float | None:
        return None if self.attempts == 0 else self.succeeded / self.attempts


def _answered_2xx() -> ColumnElement[bool]:
    return and_(Attempt.status_code >= 200, Attempt.status_code < 300)


def list_deliveries(sessions: sessionmaker[Session], tenant: str | None, flt: DeliveryFilter, *,
                    cursor: str | None = None, limit: int = PAGE_SIZE) -> DeliveryPage:
    """Deliveries matching *flt*, newest first; *cursor* is the last id of the previous page."""
    query: Select[Delivery, Event, str] = (
        select(Delivery, Event, Endpoint.url).join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .order_by(Delivery.id.desc()).limit(limit + 1))
    if tenant is not None:
        query = query.where(Delivery.tenant_id == tenant)
    if flt.webhook_id:
        query = query.where(Delivery.endpoint_id == flt.webhook_id)
    if flt.event_type:
        query = query.where(Event.event_type == flt.event_type)
    if flt.state:
        query = query.where(Delivery.state == flt.state)
    if flt.reason:
        query = query.where(Delivery.dead_reason == flt.reason)
    if flt.since:
        query = query.where(Delivery.created_at >= flt.since)
    if flt.until:
        query = query.where(Delivery.created_at < flt.until)
    if cursor:
        query = query.where(Delivery.id < cursor)
    with transaction(sessions) as session:
        found = session.execute(query).all()
        page = found[:limit]
        shown = views.deliveries(session, [(d, e) for d, e, _ in page])
    rows = [DeliveryRow(view, d.tenant_id, url) for view, (d, _, url) in zip(shown, page, strict=True)]
    return DeliveryPage(rows, page[-1][0].id if len(found) > limit else None)


def get_delivery(sessions: sessionmaker[Session], tenant: str | None,
                 delivery_id: str) -> DeliveryDetail | None:
    """One delivery with its attempts, endpoint and event; None if absent or another tenant's."""
    query = (select(Delivery, Event, Endpoint).join(Event, Event.id == Delivery.event_id)
             .join(Endpoint, Endpoint.id == Delivery.endpoint_id).where(Delivery.id == delivery_id))
    if tenant is not None:
        query = query.where(Delivery.tenant_id == tenant)
    with transaction(sessions) as session:
        found = session.execute(query).first()
        if found is None:
            return None
        delivery, event, endpoint = found
        [view] = views.deliveries(session, [(delivery, event)])
        facts = EventFacts(event.id, event.event_type, event.tenant_id, event.occurred_at,
                           dict(event.payload or {}), event.ordering_key, event.sequence)
        session.expunge(endpoint)
    return DeliveryDetail(DeliveryRow(view, delivery.tenant_id, endpoint.url), endpoint, facts)


def delivery_tenant(sessions: sessionmaker[Session], delivery_id: str) -> str | None:
    """The tenant a delivery belongs to, None if there is no such delivery."""
    with transaction(sessions) as session:
        return session.scalar(select(Delivery.tenant_id).where(Delivery.id == delivery_id))


def throughput(sessions: sessionmaker[Session], tenant: str | None, now: datetime) -> Throughput:
    since = now - RATE_WINDOW
    delivered = select(func.count()).select_from(Delivery).where(Delivery.succeeded_at >= since)
    attempts = (select(func.count(), func.coalesce(func.sum(case((_answered_2xx(), 0), else_=1)), 0))
                .select_from(Attempt).join(Delivery, Delivery.id == Attempt.delivery_id)
                .where(Attempt.started_at >= since))
    states = (select(Delivery.state, func.count()).where(Delivery.state.in_([
        DeliveryState.PENDING, DeliveryState.RETRY_SCHEDULED, DeliveryState.IN_FLIGHT,
        DeliveryState.DEAD])).group_by(Delivery.state))
    if tenant is not None:
        delivered = delivered.where(Delivery.tenant_id == tenant)
        attempts = attempts.where(Delivery.tenant_id == tenant)
        states = states.where(Delivery.tenant_id == tenant)
    with transaction(sessions) as session:
        done = session.scalar(delivered) or 0
        tried, failed = session.execute(attempts).one()
        by_state = {state: count for state, count in session.execute(states).all()}
    seconds = RATE_WINDOW.total_seconds()
    return Throughput(
        window_seconds=seconds, delivered_per_second=done / seconds,
        attempts_per_second=(tried or 0) / seconds, failed_attempts_per_second=(failed or 0) / seconds,
        waiting=by_state.get(DeliveryState.PENDING, 0) + by_state.get(DeliveryState.RETRY_SCHEDULED, 0),
        in_flight=by_state.get(DeliveryState.IN_FLIGHT, 0), dead=by_state.get(DeliveryState.DEAD, 0))


def endpoint_health(sessions: sessionmaker[Session], tenant: str | None,
                    now: datetime) -> list[EndpointHealth]:
    """Every live endpoint of *tenant* (all when None) with its recent attempts' success ratio
    and its last failed attempt."""
    endpoints = admin.list_endpoints(sessions, tenant)
    if not endpoints:
        return []
    ids = [e.id for e in endpoints]
    since = now - HEALTH_WINDOW
    with transaction(sessions) as session:
        counts = {
            endpoint_id: (total, ok or 0)
            for endpoint_id, total, ok in session.execute(
                select(Delivery.endpoint_id, func.count(),
                       func.sum(case((_answered_2xx(), 1), else_=0)))
                .select_from(Attempt).join(Delivery, Delivery.id == Attempt.delivery_id)
                .where(Delivery.endpoint_id.in_(ids), Attempt.started_at >= since)
                .group_by(Delivery.endpoint_id)).all()
        }
        failures: dict[str, Attempt] = {}
        for endpoint_id in ids:
            last = session.scalar(
                select(Attempt).join(Delivery, Delivery.id == Attempt.delivery_id)
                .where(Delivery.endpoint_id == endpoint_id,
                       or_(Attempt.status_code.is_(None), Attempt.status_code < 200,
                           Attempt.status_code >= 300))
                .order_by(Attempt.id.desc()).limit(1))
            if last is not None:
                failures[endpoint_id] = last
    health = []
    for endpoint in endpoints:
        total, ok = counts.get(endpoint.id, (0, 0))
        last = failures.get(endpoint.id)
        error = None if last is None else (
            f"HTTP {last.status_code}" if last.status_code is not None
            else f"{last.error_class or 'error'}: {last.error_message or ''}".strip())
        health.append(EndpointHealth(endpoint, total, ok, error,
                                     None if last is None else last.started_at))
    return health
