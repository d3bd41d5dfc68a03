"""Event routes: publish (idempotent, per environment, optional one-off URL) and look up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select

from app import publishing
from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, TenantDep
from app.client import Hookline
from app.db import transaction
from app.fanout import ItemError
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
                                  environment=body.environment, ordering_key=body.ordering_key)
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
    return hookline.publish(tenant, body.type, body.data, occurred_at=body.occurred_at,
                            idempotency_key=body.idempotency_key, environment=body.environment,
                            webhook_url=url, webhook_secret=body.webhook_secret,
                            ordering_key=body.ordering_key)


@router.post("/batch", status_code=200, response_model=schemas.EventBatchAccepted)
def publish_batch(body: schemas.EventBatchCreate, tenant: TenantDep,
                  hookline: HooklineDep) -> schemas.EventBatchAccepted:
    """Publish up to 1,000 events in one transaction. Each item is validated like
    ``POST /events`` and gets its own result; bad items are reported (index, field,
    message) and write nothing, the good ones are written and delivered."""
    items: list[dict[str, Any]] = []
    early: dict[int, schemas.EventBatchItem] = {}
    for index, raw in enumerate(body.events):
        try:
            items.append(batch_item(raw))
        except ItemError as exc:
            early[index] = schemas.EventBatchItem(index=index, status="error", error=str(exc),
                                                  field=exc.field)
            items.append({"event_type": None, "data": None})
    result = hookline.publish_many(tenant, items, environment=body.environment)
    results = [
        early.get(item.index) or schemas.EventBatchItem(
            index=item.index, status=item.status, id=item.event_id,
            delivery_ids=list(item.delivery_ids), error=item.error, field=item.field)
        for item in result.items
    ]
    return schemas.EventBatchAccepted(
        created=sum(r.status == "created" for r in results),
        existing=sum(r.status == "existing" for r in results),
        errors=sum(r.status == "error" for r in results), results=results)


_BATCH_FIELDS = {"type", "data", "idempotencyKey", "orderingKey", "occurredAt"}


def batch_item(raw: dict[str, Any]) -> dict[str, Any]:
    """One batch item's JSON as :meth:`Hookline.publish_many` takes it; ItemError if malformed."""
    unknown = sorted(set(raw) - _BATCH_FIELDS)
    if unknown:
        name = unknown[0] if is_clean_text(unknown[0]) else "event"
        raise ItemError(name, f"unknown field {unknown[0]!r} (allowed: "
                              f"{', '.join(sorted(_BATCH_FIELDS))})")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ItemError("type", "type is required (an event type name)")
    key = raw.get("idempotencyKey")
    if key is not None and not isinstance(key, str):
        raise ItemError("idempotencyKey", "idempotencyKey must be a string")
    ordering_key = raw.get("orderingKey")
    if ordering_key is not None and not isinstance(ordering_key, str):
        raise ItemError("orderingKey", "orderingKey must be a string")
    for name, value in (("type", event_type), ("idempotencyKey", key),
                        ("orderingKey", ordering_key)):
        if value is not None and not is_clean_text(value):
            raise ItemError(name, f"{name} may not contain control characters or lone surrogates")
    occurred = raw.get("occurredAt")
    occurred_at: datetime | None = None
    if occurred is not None:
        try:
            occurred_at = datetime.fromisoformat(str(occurred).replace("Z", "+00:00"))
            if occurred_at.tzinfo is None:
                raise ValueError("no time zone")
            occurred_at = occurred_at.astimezone(UTC)
        except (ValueError, OverflowError):
            raise ItemError("occurredAt", "occurredAt must be an ISO 8601 date-time with a "
                                          "time zone, within the years 1 to 9999 UTC") from None
    return {"event_type": event_type, "data": raw.get("data"), "idempotency_key": key,
            "ordering_key": ordering_key, "occurred_at": occurred_at}


def is_clean_text(value: str) -> bool:
    """No control characters and no lone surrogates (what a database and a header can hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 or ord(c) == 127 for c in value)


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
            idempotency_key=event.idempotency_key, ordering_key=event.ordering_key,
            sequence=event.sequence, created_at=event.created_at,
            pruned_at=event.pruned_at, deliveries=views.deliveries(session, rows),
        )
