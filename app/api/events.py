"""Event routes: publish (idempotent, per environment, optional one-off URL) and look up."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select

from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, TenantDep
from app.db import transaction
from app.models import Delivery, Event

router = APIRouter(prefix="/api/{tenantId}/events", tags=["events"])


@router.post("", status_code=202, response_model=schemas.EventAccepted,
             responses={200: {"model": schemas.EventAccepted,
                              "description": "A repeated idempotency key: the first event."}})
def publish_event(body: schemas.EventCreate, tenant: TenantDep, hookline: HooklineDep,
                  response: Response) -> schemas.EventAccepted:
    result = hookline.publish(tenant, body.type, body.data, occurred_at=body.occurred_at,
                              idempotency_key=body.idempotency_key, environment=body.environment,
                              webhook_url=body.webhook_url)
    if not result.created:
        response.status_code = 200
    return schemas.EventAccepted(id=result.event_id, created=result.created,
                                 delivery_ids=list(result.delivery_ids))


@router.get("/{eventId}", response_model=schemas.EventView)
def get_event(eventId: IdPath, tenant: TenantDep, hookline: HooklineDep) -> schemas.EventView:
    with transaction(hookline.sessions) as session:
        event = session.get(Event, eventId)
        if event is None or event.tenant_id != tenant:
            raise HTTPException(404, "not found")
        rows = [(d, event) for d in session.scalars(
            select(Delivery).where(Delivery.event_id == event.id).order_by(Delivery.id))]
        return schemas.EventView(
            id=event.id, type=event.event_type, environment=event.environment,
            data=event.payload, occurred_at=event.occurred_at,
            idempotency_key=event.idempotency_key, created_at=event.created_at,
            deliveries=views.deliveries(session, rows),
        )
