"""Rows to API bodies: what a tenant may see of its webhooks, events, deliveries and
incoming webhooks."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api import schemas
from app.inbound import hook_url
from app.models import Attempt, Delivery, Endpoint, Event, IncomingWebhook


def webhook(endpoint: Endpoint) -> schemas.Webhook:
    return schemas.Webhook(
        id=endpoint.id, endpoint=endpoint.url, events=list(endpoint.event_types),
        enabled=endpoint.enabled, disabled_reason=endpoint.disabled_reason,
        contract=endpoint.contract, environment=endpoint.environment,
        headers=dict(endpoint.headers or {}), auth_header=endpoint.auth_header,
        timeout_seconds=endpoint.timeout_seconds, max_attempts=endpoint.max_attempts,
        description=endpoint.description,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        circuit=circuit_name(endpoint.circuit_state),
        circuit_retry_at=endpoint.circuit_retry_at if endpoint.circuit_state != "closed" else None,
        ordering="key" if endpoint.ordering == "key" else "none",
        rate_limit=None if endpoint.rate_limit_per_second is None else schemas.RateLimitView(
            per_second=endpoint.rate_limit_per_second, burst=endpoint.rate_limit_burst or 1),
        created_at=endpoint.created_at, updated_at=endpoint.updated_at,
    )


def circuit_name(state: str | None) -> Literal["closed", "open", "half-open"]:
    if state == "open":
        return "open"
    if state == "half_open":
        return "half-open"
    return "closed"


def webhook_with_secret(endpoint: Endpoint, secret: str) -> schemas.WebhookWithSecret:
    return schemas.WebhookWithSecret(**webhook(endpoint).model_dump(), signature_secret=secret)


def incoming_webhook(hook: IncomingWebhook) -> schemas.IncomingWebhook:
    return schemas.IncomingWebhook(
        id=hook.id, name=hook.name, event_type=hook.event_type, environment=hook.environment,
        token_prefix=hook.token_prefix, created_at=hook.created_at, last_used_at=hook.last_used_at,
    )


def incoming_webhook_with_url(hook: IncomingWebhook, token: str,
                              public_url: str) -> schemas.IncomingWebhookWithUrl:
    return schemas.IncomingWebhookWithUrl(**incoming_webhook(hook).model_dump(),
                                          url=hook_url(public_url, token), token=token)


def attempt(row: Attempt) -> schemas.AttemptView:
    return schemas.AttemptView(
        number=row.attempt_number, started_at=row.started_at, duration_ms=row.duration_ms,
        status_code=row.status_code, error=row.error_message, error_class=row.error_class,
        response_excerpt=row.response_excerpt,
    )


def deliveries(session: Session, rows: list[tuple[Delivery, Event]]) -> list[schemas.DeliveryView]:
    """Delivery bodies with their attempts, loaded in one query."""
    ids = [d.id for d, _ in rows]
    by_delivery: dict[str, list[schemas.AttemptView]] = {i: [] for i in ids}
    if ids:
        for row in session.scalars(select(Attempt).where(Attempt.delivery_id.in_(ids))
                                   .order_by(Attempt.id)):
            by_delivery[row.delivery_id].append(attempt(row))
    return [
        schemas.DeliveryView(
            id=d.id, event_id=d.event_id, event_type=e.event_type, webhook_id=d.endpoint_id,
            state=d.state, attempt_count=d.attempt_count,
            next_attempt_at=d.next_attempt_at if d.state in ("pending", "retry_scheduled") else None,
            last_status_code=d.last_status_code, last_error=d.last_error,
            dead_reason=d.dead_reason, created_at=d.created_at, succeeded_at=d.succeeded_at,
            dead_at=d.dead_at, attempts=by_delivery[d.id],
        )
        for d, e in rows
    ]
