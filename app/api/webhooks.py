"""Webhook routes: The Wallet Crew's CRUD shape, plus secret rotation and a test send."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import select

from app import admin
from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, IdQuery, TenantDep
from app.db import transaction
from app.models import Attempt, Delivery, DeliveryState, Endpoint

router = APIRouter(prefix="/api/{tenantId}/webhooks", tags=["webhooks"])

#: Field names in the API → keyword names of ``admin.update_endpoint``.
_FIELDS = {"endpoint": "url", "events": "events", "enabled": "enabled", "contract": "contract",
           "environment": "environment", "headers": "headers", "auth_header": "auth_header",
           "timeout_seconds": "timeout_seconds", "max_attempts": "max_attempts",
           "description": "description"}


@router.post("", status_code=201, response_model=schemas.WebhookWithSecret)
def create_webhook(body: schemas.WebhookCreate, tenant: TenantDep,
                   hookline: HooklineDep) -> schemas.WebhookWithSecret:
    created = admin.add_endpoint(
        hookline.sessions, hookline.catalogue, tenant=tenant, url=body.endpoint,
        events=body.events, contract=body.contract, timeout_seconds=body.timeout_seconds,
        max_attempts=body.max_attempts, description=body.description,
        secret=body.signature_secret, headers=body.headers, auth_header=body.auth_header,
        policy=hookline.egress_policy, environment=body.environment, enabled=body.enabled,
    )
    return views.webhook_with_secret(created.endpoint, created.secret)


@router.get("", response_model=schemas.WebhookPage)
def list_webhooks(
    tenant: TenantDep, hookline: HooklineDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: IdQuery = None,
) -> schemas.WebhookPage:
    with transaction(hookline.sessions) as session:
        query = (select(Endpoint).where(Endpoint.tenant_id == tenant, Endpoint.deleted_at.is_(None),
                                        Endpoint.one_off.is_(False))
                 .order_by(Endpoint.id).limit(limit + 1))
        if cursor:
            query = query.where(Endpoint.id > cursor)
        rows = list(session.scalars(query))
    page = rows[:limit]
    return schemas.WebhookPage(items=[views.webhook(e) for e in page],
                               next_cursor=page[-1].id if len(rows) > limit else None)


@router.get("/{webhookId}", response_model=schemas.Webhook)
def get_webhook(webhookId: IdPath, tenant: TenantDep, hookline: HooklineDep) -> schemas.Webhook:
    return views.webhook(admin.get_endpoint(hookline.sessions, webhookId, tenant=tenant))


@router.patch("/{webhookId}", response_model=schemas.WebhookWithSecret | schemas.Webhook)
def update_webhook(webhookId: IdPath, body: schemas.WebhookUpdate, tenant: TenantDep,
                   hookline: HooklineDep) -> schemas.Webhook:
    changes: dict[str, Any] = {
        _FIELDS[name]: value for name, value in body.model_dump(exclude_unset=True, by_alias=False).items()
    }
    for required in ("url", "events", "enabled", "contract", "environment"):
        if required in changes and changes[required] is None:
            raise HTTPException(422, f"{required} cannot be null")
    if "headers" in changes and changes["headers"] is None:
        changes["headers"] = {}
    updated = admin.update_endpoint(hookline.sessions, hookline.catalogue, webhookId, changes,
                                    tenant=tenant, policy=hookline.egress_policy)
    if updated.secret:
        return views.webhook_with_secret(updated.endpoint, updated.secret)
    return views.webhook(updated.endpoint)


@router.delete("/{webhookId}", status_code=204)
def delete_webhook(webhookId: IdPath, tenant: TenantDep, hookline: HooklineDep) -> Response:
    admin.delete_endpoint(hookline.sessions, webhookId, tenant=tenant)
    return Response(status_code=204)


@router.post("/{webhookId}/secret/rotate", response_model=schemas.RotatedSecret)
def rotate_secret(webhookId: IdPath, tenant: TenantDep, hookline: HooklineDep,
                  body: schemas.RotateSecret | None = None) -> schemas.RotatedSecret:
    seconds = (body.grace_period_seconds if body and body.grace_period_seconds is not None
               else hookline.settings.rotation_grace_seconds)
    rotated = admin.rotate_secret(hookline.sessions, webhookId, grace=timedelta(seconds=seconds),
                                  tenant=tenant)
    return schemas.RotatedSecret(id=rotated.endpoint_id, signature_secret=rotated.secret,
                                 previous_secret_valid_until=rotated.previous_valid_until)


@router.post("/{webhookId}/test", response_model=schemas.TestResult,
             responses={202: {"model": schemas.TestResult}})
def test_send(webhookId: IdPath, tenant: TenantDep, hookline: HooklineDep,
              response: Response, body: schemas.TestSend | None = None) -> schemas.TestResult:
    """Send a sample event through the real pipeline to this webhook only.

    Answers 200 with the attempt's result when it finishes within ``waitSeconds``,
    else 202 with the delivery to poll.
    """
    body = body or schemas.TestSend()
    endpoint = admin.get_endpoint(hookline.sessions, webhookId, tenant=tenant)
    if not endpoint.enabled:
        raise HTTPException(409, "the webhook is disabled: enable it before a test send")
    data = body.data if body.data is not None else {"test": True, "webhook_id": webhookId,
                                                    "message": "Test event from Hookline"}
    published = hookline.publish(tenant, body.event_type, data, endpoint_ids=[webhookId])
    [delivery_id] = published.delivery_ids
    deadline = time.monotonic() + body.wait_seconds
    while True:
        with transaction(hookline.sessions) as session:
            state = session.scalar(select(Delivery.state).where(Delivery.id == delivery_id))
            last = session.scalar(select(Attempt).where(Attempt.delivery_id == delivery_id)
                                  .order_by(Attempt.id.desc()).limit(1))
        finished = last is not None and state != DeliveryState.IN_FLIGHT
        if finished or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not finished:
        response.status_code = 202
    return schemas.TestResult(
        event_id=published.event_id, delivery_id=delivery_id, state=state, finished=finished,
        attempt=views.attempt(last) if last is not None and finished else None,
        poll=f"/api/{tenant}/deliveries/{delivery_id}",
    )
