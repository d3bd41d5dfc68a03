"""Event routes: publish (idempotent, per environment, optional one-off URL) and look up."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select

from app import publishing
from app.admin import validate_endpoint_url
from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, TenantDep
from app.client import Hookline
from app.db import transaction
from app.models import Delivery, Event

router = APIRouter(prefix="/api/{tenantId}/events", tags=["events"])


@router.post("", status_code=202, response_model=schemas.EventAccepted,
             response_model_exclude_none=True,
             responses={200: {"model": schemas.EventAccepted,
                              "description": "A repeated idempotency key: the first event."}})
def publish_event(body: schemas.EventCreate, tenant: TenantDep, hookline: HooklineDep,
                  response: Response) -> schemas.EventAccepted:
    if body.webhook_url is None:
        if body.webhook_secret is not None:
            raise HTTPException(422, "webhookSecret signs a one-off destination: it needs webhookUrl")
        result = hookline.publish(tenant, body.type, body.data, occurred_at=body.occurred_at,
                                  idempotency_key=body.idempotency_key,
                                  environment=body.environment)
        generated = None
    else:
        result = _publish_one_off(hookline, tenant, body, body.webhook_url)
        generated = (publishing.one_off_secret(hookline.sessions, result)
                     if body.webhook_secret is None else None)
    if not result.created:
        response.status_code = 200
    return schemas.EventAccepted(id=result.event_id, created=result.created,
                                 delivery_ids=list(result.delivery_ids), webhook_secret=generated)


def _publish_one_off(hookline: Hookline, tenant: str, body: schemas.EventCreate,
                     url: str) -> publishing.PublishResult:
    """The event to its one-off destination *url*, signed with the caller's or a new secret."""
    return publishing.publish(
        hookline.sessions, hookline.dispatcher, hookline.catalogue, tenant=tenant,
        event_type=body.type, data=body.data,
        max_payload_bytes=hookline.settings.max_payload_bytes, occurred_at=body.occurred_at,
        idempotency_key=body.idempotency_key, environment=body.environment,
        webhook_url=validate_endpoint_url(url, hookline.egress_policy),
        webhook_secret=body.webhook_secret)


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
