"""Incoming webhook routes: a tenant's hooks (create, list, read, revoke) and the public
``POST /hooks/{token}`` that turns a call into an event (:mod:`app.inbound`).

The public route takes no API key: the token in the path is the credential. Any token
that is not a live hook's (malformed, unknown, revoked) is the same 404, and the body
is only looked at once the token has opened a hook.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response

from app import inbound
from app.api import schemas, views
from app.api.deps import HooklineDep, IdPath, IdQuery, TenantDep
from app.errors import (
    InputError,
    InvalidEventType,
    PayloadTooLarge,
    UnknownEventType,
    UnknownIncomingWebhook,
)

router = APIRouter(prefix="/api/{tenantId}/incoming-webhooks", tags=["incoming webhooks"])
hooks_router = APIRouter(tags=["incoming webhooks"])


@router.post("", status_code=201, response_model=schemas.IncomingWebhookWithUrl)
def create_incoming_webhook(body: schemas.IncomingWebhookCreate, tenant: TenantDep,
                            hookline: HooklineDep) -> schemas.IncomingWebhookWithUrl:
    """A new hook; its URL (and the token in it) is shown in this answer only."""
    created = inbound.create(hookline.sessions, hookline.catalogue, tenant=tenant, name=body.name,
                             event_type=body.event_type, environment=body.environment)
    return views.incoming_webhook_with_url(created.hook, created.token,
                                           hookline.settings.resolved_public_url)


@router.get("", response_model=schemas.IncomingWebhookPage)
def list_incoming_webhooks(
    tenant: TenantDep, hookline: HooklineDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: IdQuery = None,
) -> schemas.IncomingWebhookPage:
    """The tenant's live hooks, oldest first (tokens are never shown again)."""
    rows = inbound.list_hooks(hookline.sessions, tenant, limit=limit + 1, after=cursor)
    page = rows[:limit]
    return schemas.IncomingWebhookPage(items=[views.incoming_webhook(h) for h in page],
                                       next_cursor=page[-1].id if len(rows) > limit else None)


@router.get("/{hookId}", response_model=schemas.IncomingWebhook)
def get_incoming_webhook(hookId: IdPath, tenant: TenantDep,
                         hookline: HooklineDep) -> schemas.IncomingWebhook:
    return views.incoming_webhook(inbound.get(hookline.sessions, hookId, tenant=tenant))


@router.delete("/{hookId}", status_code=204)
def revoke_incoming_webhook(hookId: IdPath, tenant: TenantDep, hookline: HooklineDep) -> Response:
    """Revoke the hook: its URL answers 404 from now on, exactly like one that never existed."""
    if not inbound.revoke(hookline.sessions, hookId, tenant=tenant):
        raise HTTPException(404, "not found")
    return Response(status_code=204)


async def raw_body(request: Request) -> bytes:
    """The request body as sent: the route parses it itself, to answer 400 in its own words."""
    return await request.body()


def _problem(description: str) -> dict[str, Any]:
    return {"model": schemas.Problem, "description": description}


#: Documents the body the route reads itself: any JSON object.
_JSON_OBJECT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "additionalProperties": True,
               "description": "Becomes the event's data."}}}}}


@hooks_router.post(
    "/hooks/{token}", status_code=202, response_model=schemas.HookAccepted,
    response_description="Accepted: the event is recorded and on its way to the webhooks.",
    openapi_extra=_JSON_OBJECT_BODY,
    responses={
        200: {"model": schemas.HookAccepted,
              "description": "A repeated Idempotency-Key: the first call's event."},
        400: _problem("The body is not a JSON object, or the Idempotency-Key is out of bounds."),
        404: _problem("No live hook has this token (unknown and revoked alike)."),
        409: _problem("The hook's event type is no longer in the catalogue."),
        413: _problem("The body is over the request or payload size limit."),
    },
)
def receive_hook(
    token: Annotated[str, Path(description="The token at the end of the hook's URL (hlin_…).")],
    body: Annotated[bytes, Depends(raw_body)],
    hookline: HooklineDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", description="A repeat answers the first call's event.")] = None,
) -> schemas.HookAccepted:
    """Publish the JSON object body as the hook's event, to the tenant's webhooks of the
    hook's environment. No API key: the token is the credential."""
    try:
        received = inbound.receive(hookline.sessions, hookline.dispatcher, hookline.catalogue,
                                   token, body, max_payload_bytes=hookline.settings.max_payload_bytes,
                                   idempotency_key=idempotency_key)
    except UnknownIncomingWebhook:
        raise HTTPException(404, "not found") from None
    except PayloadTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except (UnknownEventType, InvalidEventType):
        raise HTTPException(409, "this hook's event type is no longer in the catalogue") from None
    except InputError as exc:
        raise HTTPException(400, str(exc)) from None
    if not received.created:
        response.status_code = 200
    return schemas.HookAccepted(event_id=received.event_id, event_type=received.event_type,
                                environment=received.environment, created=received.created)
