"""Publish: an event and its fan-out written in one transaction, enqueued after commit.

Validation happens before anything is written, so bad input leaves nothing behind.
If the broker cannot take the messages, the deliveries are parked in SQL and the
sweeper sends them later: a committed event is never lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue
from app.contracts import get_contract
from app.contracts.base import canonical_json
from app.db import transaction
from app.dispatch import Dispatcher
from app.errors import InputError, InvalidPayload, PayloadTooLarge, UnknownTenant
from app.ids import new_id
from app.json_depth import MAX_JSON_DEPTH, json_depth
from app.matching import matches_any
from app.models import (
    Delivery,
    DeliveryState,
    Endpoint,
    Environment,
    Event,
    Ordering,
    Tenant,
    utcnow,
)
from app.operational import refuse_operational
from app.ordering import next_sequences, resolve_ordering_key
from app.subscribers import SubscriberCache

MAX_IDEMPOTENCY_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class PublishResult:
    event_id: str
    delivery_ids: list[str] = field(default_factory=list)
    created: bool = True
    parked: list[str] = field(default_factory=list)


def encode_payload(data: Any, limit: int) -> dict[str, Any]:
    """The payload as stored: a JSON object within *limit* bytes, or a clear error.

    The depth is checked first, without recursion: the encoder after it recurses.
    """
    if not isinstance(data, Mapping):
        raise InvalidPayload(f"payload must be a JSON object, not {type(data).__name__}")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidPayload(f"data is JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        encoded = canonical_json(dict(data))
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"payload is not JSON-serialisable: {exc}") from None
    if len(encoded) > limit:
        raise PayloadTooLarge(len(encoded), limit)
    if _has_nul(data):
        raise InvalidPayload("payload strings may not contain NUL (\\u0000) characters")
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in *value*, key or value, holds NUL (walked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def implied_idempotency_key(field_name: str | None, payload: Mapping[str, Any]) -> str | None:
    """The key an event type derives from its data (Cr3dentials: ``sessionId:<id>``)."""
    if field_name is None:
        return None
    value = payload.get(field_name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise InvalidPayload(f"data.{field_name} is required for this event type (its idempotency key)")
    return f"{field_name}:{value}"


def resolve_tenant(session: Session, ref: str) -> Tenant:
    """A tenant by id or by name."""
    tenant = session.get(Tenant, ref) or session.scalar(select(Tenant).where(Tenant.name == ref))
    if tenant is None:
        raise UnknownTenant(ref)
    return tenant


def publish(
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    catalogue: Catalogue,
    *,
    tenant: str,
    event_type: str,
    data: Any,
    max_payload_bytes: int,
    occurred_at: datetime | None = None,
    idempotency_key: str | None = None,
    environment: str = Environment.PRODUCTION,
    webhook_url: str | None = None,
    endpoint_ids: Sequence[str] | None = None,
    guard: Callable[[Session], None] | None = None,
    webhook_secret: str | None = None,
    cache: SubscriberCache | None = None,
    enqueue: Callable[[list[tuple[str, str]]], None] | None = None,
    ordering_key: str | None = None,
) -> PublishResult:
    """Record an event for *tenant*, fan it out to matching endpoints and enqueue them.

    Only endpoints of the event's *environment* receive it. *webhook_url* sends the
    event to that one-off destination instead (Cr3dentials' per-session URL), in the
    wire format of the tenant's oldest webhook subscribed to the type and signed with
    *webhook_secret* or a new secret (:func:`one_off_endpoint`); the caller validates the
    URL. *endpoint_ids* sends it to exactly those endpoints (a test send). *guard*
    runs first inside the event's transaction, a repeated idempotency key included;
    if it raises, nothing is written (an incoming webhook checks there that it is
    still live and records its use). Without those three, the event takes the bulk
    path of :mod:`app.fanout`, with *cache* holding the tenant's subscribers, and
    *enqueue* (an :class:`app.coalescing.EnqueueCoalescer`'s ``submit``), if given,
    sends its messages instead of a send before returning. *ordering_key* (or the
    field the event type declares) names the entity the event is about: the event gets
    the next sequence number of that key (:mod:`app.ordering`).
    """
    declared = catalogue.require(event_type)
    refuse_operational(event_type)
    environment = check_environment(environment)
    payload = encode_payload(data, max_payload_bytes)
    if idempotency_key is None:
        idempotency_key = implied_idempotency_key(declared.idempotency_field, payload)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH):
        raise InputError(f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    from app.fanout import ValidItem, utc_time, write_and_enqueue

    ordering_key = resolve_ordering_key(ordering_key, declared.ordering_field, payload)
    occurred_at = utc_time(occurred_at)
    if webhook_url is None and endpoint_ids is None and guard is None:
        # The hot path: Core SQL, cached subscribers (app/fanout.py).
        written, parked = write_and_enqueue(
            sessions.kw["bind"], dispatcher, cache or SubscriberCache(), tenant=tenant,
            environment=environment,
            valid=[ValidItem(0, event_type, payload, idempotency_key, occurred_at,
                             ordering_key=ordering_key)],
            enqueue=enqueue)
        item = written[0]
        return PublishResult(event_id=item.event_id or "", delivery_ids=list(item.delivery_ids),
                             created=item.status == "created",
                             parked=[i for i in parked if i in item.delivery_ids])
    now = utcnow()
    try:
        with transaction(sessions) as session:
            tenant_row = resolve_tenant(session, tenant)
            if guard is not None:
                guard(session)
            if idempotency_key is not None:
                existing = _existing(session, tenant_row.id, idempotency_key)
                if existing is not None:
                    return existing
            if webhook_url is not None:
                endpoint_ids = [one_off_endpoint(session, tenant_row, event_type, environment,
                                                 webhook_url, now, webhook_secret).id]
            event, deliveries = record_event(
                session, tenant_row, event_type, payload, now=now,
                occurred_at=occurred_at, idempotency_key=idempotency_key,
                environment=environment, endpoint_ids=endpoint_ids, ordering_key=ordering_key,
            )
    except IntegrityError:
        # Another publisher won the race for this idempotency key.
        if idempotency_key is None:
            raise
        with transaction(sessions) as session:
            tenant_row = resolve_tenant(session, tenant)
            if guard is not None:
                guard(session)
            existing = _existing(session, tenant_row.id, idempotency_key)
        if existing is None:
            raise
        return existing
    parked = enqueue_or_park(sessions, dispatcher, [(d.id, d.endpoint_id) for d in deliveries])
    return PublishResult(event_id=event.id, delivery_ids=[d.id for d in deliveries], parked=parked)


def record_event(
    session: Session,
    tenant: Tenant,
    event_type: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    idempotency_key: str | None = None,
    environment: str = Environment.PRODUCTION,
    endpoint_ids: Sequence[str] | None = None,
    ordering_key: str | None = None,
) -> tuple[Event, list[Delivery]]:
    """Write an event and one pending delivery per matching endpoint inside *session*.

    The caller owns the transaction (a producer relays an outbox row and marks it done
    in the same one) and, after commit, sends the messages with :func:`enqueue_or_park`.
    *payload* must already be validated (:func:`encode_payload`). An *ordering_key*
    takes its sequence number here, in the same transaction.
    """
    sequence = (next_sequences(session.connection(), tenant.id, [ordering_key])[ordering_key][0]
                if ordering_key is not None else None)
    event = Event(id=event_id or new_id("evt"), tenant_id=tenant.id, event_type=event_type,
                  payload=payload, occurred_at=occurred_at or now,
                  idempotency_key=idempotency_key, environment=environment, created_at=now,
                  ordering_key=ordering_key, sequence=sequence)
    session.add(event)
    if endpoint_ids is not None:
        targets = list(session.scalars(select(Endpoint).where(
            Endpoint.tenant_id == tenant.id, Endpoint.id.in_(list(endpoint_ids)),
            Endpoint.deleted_at.is_(None))))
    else:
        targets = subscribers(session, tenant.id, event_type, environment)
    deliveries = [
        Delivery(id=new_id("dlv"), event_id=event.id, endpoint_id=e.id,
                 tenant_id=tenant.id, state=DeliveryState.PENDING, attempt_count=0,
                 next_attempt_at=now, queued_at=now, requeue_count=0,
                 created_at=now, updated_at=now,
                 **({"ordering_key": ordering_key, "position": sequence}
                    if e.ordering == Ordering.KEY and sequence is not None else {}))
        for e in targets
    ]
    session.add_all(deliveries)
    return event, deliveries


def subscribers(session: Session, tenant_id: str, event_type: str,
                environment: str) -> list[Endpoint]:
    """The tenant's live endpoints of *environment* whose filters match *event_type*."""
    endpoints = session.scalars(
        select(Endpoint).where(Endpoint.tenant_id == tenant_id, Endpoint.enabled,
                               Endpoint.deleted_at.is_(None), Endpoint.one_off.is_(False),
                               Endpoint.environment == environment)
        .order_by(Endpoint.created_at, Endpoint.id)
    ).all()
    return [e for e in endpoints if matches_any(e.event_types, event_type)]


def one_off_endpoint(session: Session, tenant: Tenant, event_type: str, environment: str,
                     url: str, now: datetime, secret: str | None = None) -> Endpoint:
    """A hidden endpoint for one event's one-off destination, in the wire format of the
    tenant's oldest webhook subscribed to *event_type* (its contract, credential header
    name, timeout and attempts).

    It is signed with a secret of its own: *secret* when the caller names one (checked
    against the contract), else a new one (:func:`one_off_secret` reads it back). Never
    the template's secrets or static headers: those are another receiver's credentials.
    """
    matching = subscribers(session, tenant.id, event_type, environment)
    if not matching:
        raise InputError(
            f"webhookUrl needs a {environment} webhook subscribed to {event_type!r} "
            "to take its wire format from")
    template = matching[0]
    contract = get_contract(template.contract)
    if secret is not None:
        contract.validate_secret(secret)
    endpoint = Endpoint(
        id=new_id("ep"), tenant_id=tenant.id, url=url, event_types=[event_type], enabled=True,
        contract=template.contract,
        secret=secret if secret is not None else contract.generate_secret(),
        headers={}, auth_header=template.auth_header,
        timeout_seconds=template.timeout_seconds, max_attempts=template.max_attempts,
        description=f"one-off destination (wire format of {template.id})",
        environment=environment, one_off=True, created_at=now, updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def check_environment(environment: str) -> str:
    try:
        return Environment(environment).value
    except ValueError:
        known = ", ".join(e.value for e in Environment)
        raise InputError(f"unknown environment {environment!r} (known: {known})") from None


def enqueue_or_park(
    sessions: sessionmaker[Session], dispatcher: Dispatcher, pairs: list[tuple[str, str]]
) -> list[str]:
    """Send messages for committed deliveries; park those the broker refused. Returns parked ids."""
    if not pairs:
        return []
    failed = dispatcher.enqueue(pairs)
    if failed:
        with transaction(sessions) as session:
            session.execute(update(Delivery).where(Delivery.id.in_(failed)).values(queued_at=None)
                            .execution_options(synchronize_session=False))
    return failed


def _existing(session: Session, tenant_id: str, key: str) -> PublishResult | None:
    event = session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.idempotency_key == key)
    )
    if event is None:
        return None
    ids = list(session.scalars(select(Delivery.id).where(Delivery.event_id == event.id)))
    return PublishResult(event_id=event.id, delivery_ids=ids, created=False)


def one_off_secret(sessions: sessionmaker[Session], result: PublishResult) -> str | None:
    """The secret of the one-off destination *result* created, for its caller to show once;
    None for any other result (a repeated idempotency key included)."""
    if not result.created or len(result.delivery_ids) != 1:
        return None
    with transaction(sessions) as session:
        return session.scalar(
            select(Endpoint.secret).join(Delivery, Delivery.endpoint_id == Endpoint.id)
            .where(Delivery.id == result.delivery_ids[0], Endpoint.one_off))
