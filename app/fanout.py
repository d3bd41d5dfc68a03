"""Publish in bulk: many events and their deliveries in one transaction, Core SQL only.

The hot path of publishing. Each event is validated exactly as :func:`app.publishing.publish`
validates one (catalogue, payload, size, idempotency key); the tenant is read with its
endpoints version, the subscribers come from the process's :class:`~app.subscribers.SubscriberCache`,
repeated idempotency keys are looked up in one query, and the new events and
deliveries are written with two multi-row inserts. After the commit the deliveries go
to their partition queues, many ids per message.

A batch with bad items still writes its good ones: every item gets a result, created,
existing (its idempotency key was seen before, in an earlier call or earlier in this
batch) or error (with its index, the field and the message), and nothing is written for
an item in error. Only a batch-wide problem (unknown tenant or environment, too many
events) refuses the whole batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache as cache_statement
from typing import Any, Literal

from sqlalchemy import Connection, Engine, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from app.catalogue import Catalogue
from app.dispatch import Dispatcher
from app.errors import (
    BatchTooLarge,
    InputError,
    InvalidEventType,
    InvalidOrderingKey,
    InvalidPayload,
    PayloadTooLarge,
    UnknownEventType,
    UnknownTenant,
)
from app.ids import new_id
from app.models import Delivery, DeliveryState, Environment, Event, Tenant, utcnow
from app.operational import refuse_operational
from app.ordering import assign, next_sequences, resolve_ordering_key
from app.subscribers import SubscriberCache

#: Most events one call (or one ``POST …/events/batch``) may carry.
MAX_BATCH_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What became of one event of a batch."""

    index: int
    status: Literal["created", "existing", "error"]
    event_id: str | None = None
    delivery_ids: tuple[str, ...] = ()
    error: str | None = None
    #: The item's field the error is about: ``type``, ``data``, ``idempotencyKey``,
    #: ``orderingKey``, ``occurredAt``.
    field: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    items: list[ItemResult]
    #: Delivery ids the broker refused; the sweeper sends them.
    parked: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)


@dataclass(frozen=True, slots=True)
class ValidItem:
    index: int
    event_type: str
    payload: dict[str, Any]
    key: str | None
    occurred_at: datetime | None
    #: Fixed by the caller (the change feed's outbox row); a new id otherwise.
    event_id: str | None = None
    #: The entity the event is about (app/ordering.py): it gets a sequence number.
    ordering_key: str | None = None


class ItemError(InputError):
    """One item's problem, naming the field it is about."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def field_of(exc: InputError) -> str:
    if isinstance(exc, ItemError):
        return exc.field
    if isinstance(exc, InvalidOrderingKey):
        return "orderingKey"
    if isinstance(exc, UnknownEventType | InvalidEventType):
        return "type"
    if isinstance(exc, InvalidPayload | PayloadTooLarge):
        return "data"
    return "event"


def validate_item(catalogue: Catalogue, item: Mapping[str, Any], index: int,
                  max_payload_bytes: int) -> ValidItem:
    """One batch item checked like a single publish; :class:`InputError` otherwise."""
    from app.publishing import MAX_IDEMPOTENCY_KEY_LENGTH, encode_payload, implied_idempotency_key

    event_type = item.get("event_type")
    if not isinstance(event_type, str):
        raise ItemError("type", "type is required (an event type name)")
    declared = catalogue.require(event_type)
    refuse_operational(event_type)
    payload = encode_payload(item.get("data"), max_payload_bytes)
    key = item.get("idempotency_key")
    if key is None:
        key = implied_idempotency_key(declared.idempotency_field, payload)
    if key is not None and (not isinstance(key, str)
                            or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH):
        raise ItemError("idempotencyKey",
                        f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    occurred_at = utc_time(item.get("occurred_at"))
    ordering_key = resolve_ordering_key(item.get("ordering_key"), declared.ordering_field,
                                        payload)
    return ValidItem(index, event_type, payload, key, occurred_at, ordering_key=ordering_key)


def utc_time(value: Any) -> datetime | None:
    """An aware date-time in UTC (a naive one is taken as UTC); ItemError if it is none
    or falls outside years 1 to 9999 once converted."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ItemError("occurredAt", "occurredAt must be a date-time")
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise ItemError("occurredAt", "occurredAt falls outside years 1 to 9999 once "
                                      "converted to UTC") from None


def publish_many(
    engine: Engine,
    dispatcher: Dispatcher,
    catalogue: Catalogue,
    cache: SubscriberCache,
    *,
    tenant: str,
    items: Sequence[Mapping[str, Any]],
    max_payload_bytes: int,
    environment: str = Environment.PRODUCTION,
) -> BatchResult:
    """Record up to :data:`MAX_BATCH_EVENTS` events for *tenant* and enqueue their deliveries.

    Each item is a mapping with ``event_type``, ``data`` and optionally
    ``idempotency_key``, ``ordering_key`` and ``occurred_at``.
    """
    if len(items) > MAX_BATCH_EVENTS:
        raise BatchTooLarge(len(items), MAX_BATCH_EVENTS)
    from app.publishing import check_environment

    environment = check_environment(environment)
    results: dict[int, ItemResult] = {}
    valid: list[ValidItem] = []
    for index, item in enumerate(items):
        try:
            valid.append(validate_item(catalogue, item, index, max_payload_bytes))
        except InputError as exc:
            results[index] = ItemResult(index, "error", error=str(exc), field=field_of(exc))
    written, parked = write_and_enqueue(engine, dispatcher, cache, tenant=tenant,
                                        environment=environment, valid=valid)
    results.update(written)
    return BatchResult(items=[results[i] for i in range(len(items))], parked=parked)


def write_and_enqueue(engine: Engine, dispatcher: Dispatcher, cache: SubscriberCache, *,
                      tenant: str, environment: str, valid: Sequence[ValidItem],
                      enqueue: Callable[[list[tuple[str, str]]], None] | None = None,
                      ) -> tuple[dict[int, ItemResult], list[str]]:
    """Write validated items in one transaction, then enqueue; (results by index, parked).

    With *enqueue*, the messages are handed to it after the commit (a coalescer sends
    them from its own thread) and nothing is reported parked here.
    """
    deliveries: list[dict[str, Any]] = []
    quick = one_statement(engine, cache, tenant, environment, valid)
    for attempt in range(0 if quick is not None else 2):
        try:
            with engine.begin() as conn:
                written, deliveries = record_events(conn, cache, tenant, environment, valid)
            break
        except IntegrityError:
            # Another publisher won the race for an idempotency key: the second pass
            # finds its event and reports this item as existing.
            if attempt == 1 or not any(v.key for v in valid):
                raise
    if quick is not None:
        written, deliveries = quick
    pairs = [(d["id"], d["endpoint_id"]) for d in deliveries]
    if enqueue is not None:
        enqueue(pairs)
        return written, []
    return written, send_or_park(engine, dispatcher, pairs)


def one_statement(engine: Engine, cache: SubscriberCache, tenant: str, environment: str,
                  valid: Sequence[ValidItem]
                  ) -> tuple[dict[int, ItemResult], list[dict[str, Any]]] | None:
    """PostgreSQL, one event without an idempotency key or an ordering key, its tenant and
    subscribers at hand: the event and its deliveries in one autocommitted statement, one
    round trip. (An ordering key needs its sequence number: the ordinary path.)

    The statement writes only while the tenant's endpoints version is still the one the
    cached subscribers belong to; otherwise it writes nothing and returns None, and the
    caller takes the ordinary path, which reads the tenant again.
    """
    if (engine.dialect.name != "postgresql" or len(valid) != 1 or valid[0].key is not None
            or valid[0].ordering_key is not None):
        return None
    known = cache.tenants.get(tenant)
    if known is None:
        return None
    tenant_id, version = known
    item = valid[0]
    targets = cache.cached(tenant_id, version, environment, item.event_type)
    if targets is None:
        return None
    now = utcnow()
    event_id = item.event_id or new_id("evt")
    ids = [new_id("dlv") for _ in targets]
    params: dict[str, Any] = {
        "tenant": tenant_id, "version": version, "event_id": event_id,
        "event_type": item.event_type, "payload": json.dumps(item.payload, separators=(",", ":")),
        "occurred_at": item.occurred_at or now, "environment": environment, "now": now,
        "pending": DeliveryState.PENDING.value,
    }
    for n, (delivery_id, endpoint_id) in enumerate(zip(ids, targets, strict=True)):
        params[f"d{n}"], params[f"p{n}"] = delivery_id, endpoint_id
    with engine.connect() as conn:
        written = conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            _one_statement(len(ids)), params).scalar_one()
    if written != 1:
        return None
    deliveries = [{"id": d, "endpoint_id": p} for d, p in zip(ids, targets, strict=True)]
    return {item.index: ItemResult(item.index, "created", event_id, tuple(ids))}, deliveries


@cache_statement
def _one_statement(deliveries: int) -> Any:
    values = ", ".join(f"(:d{n}, :p{n})" for n in range(deliveries))
    delivery_insert = "" if not deliveries else f""",
        d AS (INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, state, attempt_count,
                                      next_attempt_at, queued_at, requeue_count, created_at,
                                      updated_at)
              SELECT v.id, e.id, v.endpoint_id, e.tenant_id, :pending, 0, :now, :now, 0, :now, :now
              FROM e, (VALUES {values}) AS v (id, endpoint_id))"""
    return text(f"""
        WITH t AS (SELECT id FROM tenants WHERE id = :tenant AND endpoints_version = :version),
        e AS (INSERT INTO events (id, tenant_id, event_type, payload, occurred_at,
                                  idempotency_key, environment, created_at)
              SELECT :event_id, t.id, :event_type, CAST(:payload AS JSONB), :occurred_at, NULL,
                     :environment, :now
              FROM t RETURNING id, tenant_id){delivery_insert}
        SELECT count(*) FROM e""")


def record_events(conn: Connection, cache: SubscriberCache, tenant: str, environment: str,
                  valid: Sequence[ValidItem]) -> tuple[dict[int, ItemResult], list[dict[str, Any]]]:
    """Write *valid* events for *tenant* and their deliveries inside the caller's transaction.

    Returns each item's result by index and the delivery rows written (with ``id`` and
    ``endpoint_id``), for the caller to enqueue after its commit.
    """
    row = conn.execute(
        select(Tenant.id, Tenant.endpoints_version)
        .where(or_(Tenant.id == tenant, Tenant.name == tenant))
        .order_by((Tenant.id == tenant).desc()).limit(1)
    ).first()
    if row is None:
        raise UnknownTenant(tenant)
    tenant_id, version = row[0], int(row[1] or 0)
    if len(cache.tenants) > 10_000:
        cache.tenants.clear()
    cache.tenants[tenant] = (tenant_id, version)
    now = utcnow()
    keys = sorted({v.key for v in valid if v.key is not None})
    known: dict[str, str] = {}
    known_deliveries: dict[str, list[str]] = {}
    if keys:
        known = {str(key): event_id for event_id, key in conn.execute(
            select(Event.id, Event.idempotency_key)
            .where(Event.tenant_id == tenant_id, Event.idempotency_key.in_(keys)))}
        if known:
            for delivery_id, event_id in conn.execute(
                    select(Delivery.id, Delivery.event_id)
                    .where(Delivery.event_id.in_(list(known.values())))
                    .order_by(Delivery.id)):
                known_deliveries.setdefault(event_id, []).append(delivery_id)
    results: dict[int, ItemResult] = {}
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    sequences = _sequences(conn, tenant_id, valid, known)
    ordered = (cache.ordered(conn, tenant_id, version, environment) if sequences
               else frozenset[str]())
    for item in valid:
        if item.key is not None and item.key in known:
            event_id = known[item.key]
            results[item.index] = ItemResult(item.index, "existing", event_id,
                                             tuple(known_deliveries.get(event_id, ())))
            continue
        event_id = item.event_id or new_id("evt")
        targets = cache.matching(conn, tenant_id, version, environment, item.event_type)
        ids = tuple(new_id("dlv") for _ in targets)
        sequence = sequences.get(item.index)
        events.append({"id": event_id, "tenant_id": tenant_id, "event_type": item.event_type,
                       "payload": item.payload, "occurred_at": item.occurred_at or now,
                       "idempotency_key": item.key, "environment": environment,
                       "created_at": now, "ordering_key": item.ordering_key,
                       "sequence": sequence})
        deliveries.extend(
            {"id": delivery_id, "event_id": event_id, "endpoint_id": endpoint_id,
             "tenant_id": tenant_id, "state": DeliveryState.PENDING, "attempt_count": 0,
             "next_attempt_at": now, "queued_at": now, "requeue_count": 0,
             "created_at": now, "updated_at": now,
             **({"ordering_key": item.ordering_key, "position": sequence}
                if endpoint_id in ordered and sequence is not None else _UNORDERED)}
            for delivery_id, endpoint_id in zip(ids, targets, strict=True))
        results[item.index] = ItemResult(item.index, "created", event_id, ids)
        if item.key is not None:
            known[item.key] = event_id
            known_deliveries[event_id] = list(ids)
    if events:
        conn.execute(insert(Event), events)
    if deliveries:
        conn.execute(insert(Delivery), deliveries)
    return results, deliveries


_UNORDERED: dict[str, Any] = {"ordering_key": None, "position": None}


def _sequences(conn: Connection, tenant_id: str, valid: Sequence[ValidItem],
               known: Mapping[str, str]) -> dict[int, int]:
    """Each new keyed item's sequence number by index (nothing to do, no statement, when
    no item has an ordering key). An item whose idempotency key was seen before, here
    or earlier in the batch, writes nothing and takes no number."""
    keyed: list[ValidItem] = []
    seen = set(known)
    for item in valid:
        if item.key is not None:
            if item.key in seen:
                continue
            seen.add(item.key)
        if item.ordering_key is not None:
            keyed.append(item)
    if not keyed:
        return {}
    keys = [item.ordering_key for item in keyed]
    numbers = assign(keys, next_sequences(conn, tenant_id, [k for k in keys if k is not None]))
    return {item.index: n for item, n in zip(keyed, numbers, strict=True) if n is not None}


def send_or_park(engine: Engine, dispatcher: Dispatcher, pairs: list[tuple[str, str]]) -> list[str]:
    """Send messages for committed deliveries; park those the broker refused."""
    if not pairs:
        return []
    failed = dispatcher.enqueue(pairs)
    if failed:
        with engine.begin() as conn:
            conn.execute(update(Delivery).where(Delivery.id.in_(failed)).values(queued_at=None))
    return failed
