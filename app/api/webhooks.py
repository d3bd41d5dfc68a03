"""Webhook routes: The Wallet Crew's CRUD shape, plus secret rotation and a test send."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app import admin
from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, IdQuery, TenantDep
from app.api.waiting import WaitSlots
from app.client import Hookline
from app.db import transaction
from app.errors import TooManyWaiting
from app.ids import new_id
from app.models import Attempt, Delivery, DeliveryState, Endpoint
from app.publishing import PublishResult

router = APIRouter(prefix="/api/{tenantId}/webhooks", tags=["webhooks"])

#: A waiting test send checks its delivery this often at first, then less often up to
#: the cap: most attempts finish within a few hundred milliseconds.
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.5

#: Field names in the API → keyword names of ``admin.update_endpoint``.
_FIELDS = {"endpoint": "url", "events": "events", "enabled": "enabled", "contract": "contract",
           "environment": "environment", "headers": "headers", "auth_header": "auth_header",
           "timeout_seconds": "timeout_seconds", "max_attempts": "max_attempts",
           "description": "description", "ordering": "ordering", "rate_limit": "rate_limit"}


@router.post("", status_code=201, response_model=schemas.WebhookWithSecret)
def create_webhook(body: schemas.WebhookCreate, tenant: TenantDep,
                   hookline: HooklineDep) -> schemas.WebhookWithSecret:
    created = admin.add_endpoint(
        hookline.sessions, hookline.catalogue, tenant=tenant, url=body.endpoint,
        events=body.events, contract=body.contract, timeout_seconds=body.timeout_seconds,
        max_attempts=body.max_attempts, description=body.description,
        secret=body.signature_secret, headers=body.headers, auth_header=body.auth_header,
        policy=hookline.egress_policy, environment=body.environment, enabled=body.enabled,
        ordering=body.ordering,
        rate_limit_per_second=body.rate_limit.per_second if body.rate_limit else None,
        rate_limit_burst=body.rate_limit.burst if body.rate_limit else None,
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
             responses={202: {"model": schemas.TestResult},
                        429: {"model": schemas.Problem,
                              "description": "The tenant's waiting test sends are at their limit."}})
async def test_send(webhookId: IdPath, tenant: TenantDep, hookline: HooklineDep, request: Request,
                    response: Response, body: schemas.TestSend | None = None) -> schemas.TestResult:
    """Send a sample event through the real pipeline to this webhook only.

    Answers 200 with the attempt's result when it finishes within ``waitSeconds``,
    else 202 with the delivery to poll. Waiting holds no worker thread; a tenant may
    keep ``HOOKLINE_API_WAITING_TEST_SENDS`` waiting at once, more are 429.
    """
    body = body or schemas.TestSend()
    slots: WaitSlots = request.app.state.test_send_waits
    slot: AbstractContextManager[None] = (
        slots.hold(tenant, body.wait_seconds) if body.wait_seconds > 0 else nullcontext())
    try:
        with slot:
            published = await run_in_threadpool(_send_test, hookline, tenant, webhookId, body)
            [delivery_id] = published.delivery_ids
            state, last = await _wait_for_attempt(hookline, delivery_id, body.wait_seconds)
    except TooManyWaiting as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    finished = _finished(state, last)
    if not finished:
        response.status_code = 202
    return schemas.TestResult(
        event_id=published.event_id, delivery_id=delivery_id, state=state, finished=finished,
        attempt=views.attempt(last) if last is not None and finished else None,
        poll=f"/api/{tenant}/deliveries/{delivery_id}",
    )


def _send_test(hookline: Hookline, tenant: str, webhook_id: str,
               body: schemas.TestSend) -> PublishResult:
    endpoint = admin.get_endpoint(hookline.sessions, webhook_id, tenant=tenant)
    if not endpoint.enabled:
        raise HTTPException(409, "the webhook is disabled: enable it before a test send")
    data = body.data if body.data is not None else {"test": True, "webhook_id": webhook_id,
                                                    "message": "Test event from Hookline"}
    # A key of its own: a test send never takes the key a type derives from its data
    # (session.*: sessionId), so it neither returns an earlier event nor blocks a later one.
    return hookline.publish(tenant, body.event_type, data, endpoint_ids=[webhook_id],
                            idempotency_key=new_id("test"))


async def _wait_for_attempt(hookline: Hookline, delivery_id: str,
                            seconds: float) -> tuple[str, Attempt | None]:
    """The delivery's state and last attempt once it finished, or when *seconds* are up.

    Sleeps on the event loop between checks; only each short check takes a thread.
    """
    deadline = time.monotonic() + seconds
    pause = FIRST_POLL_SECONDS
    while True:
        state, last = await run_in_threadpool(_attempt_so_far, hookline, delivery_id)
        remaining = deadline - time.monotonic()
        if _finished(state, last) or remaining <= 0:
            return state, last
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, MAX_POLL_SECONDS)


def _attempt_so_far(hookline: Hookline, delivery_id: str) -> tuple[str, Attempt | None]:
    with transaction(hookline.sessions) as session:
        state = session.scalars(select(Delivery.state).where(Delivery.id == delivery_id)).one()
        last = session.scalar(select(Attempt).where(Attempt.delivery_id == delivery_id)
                              .order_by(Attempt.id.desc()).limit(1))
    return state, last


def _finished(state: str, last: Attempt | None) -> bool:
    return last is not None and state != DeliveryState.IN_FLIGHT
