"""Delivery logs, single resends and dead letters (sharing app/deadletters.py with the CLI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select, update

from app import admin, deadletters
from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, IdQuery, TenantDep, TextQuery
from app.db import transaction
from app.models import Delivery, DeliveryState, Endpoint, Event, utcnow
from app.publishing import enqueue_or_park

router = APIRouter(prefix="/api/{tenantId}", tags=["deliveries"])

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = IdQuery


@router.get("/webhooks/{webhookId}/deliveries", response_model=schemas.DeliveryPage)
def delivery_log(
    webhookId: IdPath, tenant: TenantDep, hookline: HooklineDep,
    status: Annotated[schemas.DeliveryStateName | None, Query()] = None,
    eventType: TextQuery = None,
    since: schemas.UtcDateTime | None = None, until: schemas.UtcDateTime | None = None,
    limit: Limit = 50, cursor: Cursor = None,
) -> schemas.DeliveryPage:
    """The webhook's deliveries, newest first, each with every attempt."""
    admin.get_endpoint(hookline.sessions, webhookId, tenant=tenant)
    with transaction(hookline.sessions) as session:
        query = (select(Delivery, Event).join(Event, Event.id == Delivery.event_id)
                 .where(Delivery.endpoint_id == webhookId, Delivery.tenant_id == tenant)
                 .order_by(Delivery.id.desc()).limit(limit + 1))
        if status:
            query = query.where(Delivery.state == status)
        if eventType:
            query = query.where(Event.event_type == eventType)
        if since:
            query = query.where(Delivery.created_at >= since)
        if until:
            query = query.where(Delivery.created_at < until)
        if cursor:
            query = query.where(Delivery.id < cursor)
        rows = [(d, e) for d, e in session.execute(query).all()]
        page = rows[:limit]
        return schemas.DeliveryPage(items=views.deliveries(session, page),
                                    next_cursor=page[-1][0].id if len(rows) > limit else None)


def _delivery(hookline: HooklineDep, tenant: str, delivery_id: str) -> schemas.DeliveryView:
    with transaction(hookline.sessions) as session:
        row = session.execute(select(Delivery, Event).join(Event, Event.id == Delivery.event_id)
                              .where(Delivery.id == delivery_id,
                                     Delivery.tenant_id == tenant)).first()
        if row is None:
            raise HTTPException(404, "not found")
        return views.deliveries(session, [(row[0], row[1])])[0]


@router.get("/deliveries/{deliveryId}", response_model=schemas.DeliveryView)
def get_delivery(deliveryId: IdPath, tenant: TenantDep,
                 hookline: HooklineDep) -> schemas.DeliveryView:
    return _delivery(hookline, tenant, deliveryId)


@router.post("/deliveries/{deliveryId}/retry", response_model=schemas.DeliveryView)
def retry_delivery(deliveryId: IdPath, tenant: TenantDep,
                   hookline: HooklineDep) -> schemas.DeliveryView:
    """Send one delivery again now, with a fresh attempt budget.

    A dead or succeeded delivery goes back to pending; one waiting for its retry is
    brought forward; one being sent right now is a 409. A disabled or deleted webhook
    is a 409 too: enable it first.
    """
    now = utcnow()
    with transaction(hookline.sessions) as session:
        row = session.execute(select(Delivery, Endpoint).join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                              .where(Delivery.id == deliveryId, Delivery.tenant_id == tenant)).first()
        if row is None:
            raise HTTPException(404, "not found")
        delivery, endpoint = row
        if delivery.state == DeliveryState.IN_FLIGHT:
            raise HTTPException(409, "the delivery is being sent right now")
        if not endpoint.enabled or endpoint.deleted_at is not None:
            raise HTTPException(409, "the webhook is disabled or deleted: enable it first")
        resets = {} if delivery.state in (DeliveryState.PENDING, DeliveryState.RETRY_SCHEDULED) else {
            "attempt_count": 0, "requeue_count": Delivery.requeue_count + 1}
        moved = session.execute(
            update(Delivery).where(Delivery.id == deliveryId, Delivery.state == delivery.state)
            .values(state=DeliveryState.PENDING, next_attempt_at=now, queued_at=now,
                    dead_reason=None, dead_at=None, succeeded_at=None, lease_expires_at=None,
                    updated_at=now, **resets)
            .execution_options(synchronize_session=False))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise HTTPException(409, "the delivery changed state; try again")
        endpoint_id = endpoint.id
    enqueue_or_park(hookline.sessions, hookline.dispatcher, [(deliveryId, endpoint_id)])
    return _delivery(hookline, tenant, deliveryId)


@router.get("/dead-letters", response_model=schemas.DeadLetterPage)
def list_dead_letters(
    tenant: TenantDep, hookline: HooklineDep,
    webhookId: IdQuery = None,
    eventType: TextQuery = None,
    reason: TextQuery = None,
    since: schemas.UtcDateTime | None = None, limit: Limit = 50, cursor: Cursor = None,
) -> schemas.DeadLetterPage:
    flt = deadletters.DeadLetterFilter(endpoint_id=webhookId, event_type=eventType,
                                       reason=reason, since=since, tenant_id=tenant)
    rows = deadletters.list_dead_letters(hookline.sessions, flt, limit=limit + 1, after=cursor)
    page = rows[:limit]
    return schemas.DeadLetterPage(
        items=[schemas.DeadLetterView(
            delivery_id=r.delivery_id, event_id=r.event_id, event_type=r.event_type,
            webhook_id=r.endpoint_id, endpoint=r.endpoint_url, reason=r.reason,
            attempts=r.attempts, last_status_code=r.last_status_code, last_error=r.last_error,
            dead_at=r.dead_at, ordering_key=r.ordering_key,
            later_deliveries=r.later_deliveries) for r in page],
        next_cursor=page[-1].delivery_id if len(rows) > limit else None,
    )


@router.post("/dead-letters/requeue", response_model=schemas.RequeueResult)
def requeue_dead_letters(body: schemas.RequeueRequest, tenant: TenantDep,
                         hookline: HooklineDep) -> schemas.RequeueResult:
    """Requeue dead letters by ids, by a filter, or all of the tenant's (``"all": true``):
    the same semantics as ``hookline dlq requeue``."""
    chosen = body.filter or schemas.DeadLetterSelection()
    flt = deadletters.DeadLetterFilter(endpoint_id=chosen.webhook_id, event_type=chosen.event_type,
                                       reason=chosen.reason, since=chosen.since, tenant_id=tenant)
    report = deadletters.requeue(hookline.sessions, hookline.dispatcher, ids=body.ids,
                                 select_all=body.all, flt=flt, dry_run=body.dry_run)
    return schemas.RequeueResult(
        matched=report.matched, requeued=report.requeued,
        skipped_disabled=report.skipped_disabled, not_dead=report.not_dead,
        parked=report.parked, dry_run=report.dry_run)
