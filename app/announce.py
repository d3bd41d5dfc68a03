"""Operational events written: notices become events and deliveries, in the caller's transaction.

The engine's record (:mod:`app.engine.record`) and the sweeper (:mod:`app.sweeper`,
:mod:`app.auto_disable`) call :func:`announce` inside the transaction that made the
change, so an operational event commits with the change it reports, or not at all,
and is written once per change. Each event is an ordinary row of the tenant's
``events`` with one pending delivery per endpoint that subscribes to it
(:func:`recipients`: never the endpoint it is about); an event nobody subscribes to is
not written. After the commit the caller sends the deliveries' messages
(:func:`send`); any the broker refuses are parked for the sweeper.

Announcing never fails the caller: it runs in a savepoint, and an error is logged and
costs only the announcement.

SQL (the caller's connection); the rules are in :mod:`app.operational`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from app.dispatch import Dispatcher
from app.ids import new_id
from app.matching import matches_any
from app.models import DeadReason, Delivery, DeliveryState, Endpoint, Event
from app.operational import (
    DELIVERY_EXHAUSTED,
    ENDPOINT_DISABLED,
    ENDPOINT_FAILING,
    ENDPOINT_RECOVERED,
    TRIGGER_GONE,
    EndpointState,
    Notice,
    announces_exhaustion,
    delivery_exhausted,
    endpoint_disabled,
    endpoint_failing,
    endpoint_recovered,
    transitions,
)

log = logging.getLogger(__name__)


def recipients(subscribers: Sequence[tuple[str, Sequence[str]]], notice: Notice) -> list[str]:
    """Ids of the endpoints (``(id, filters)``, oldest first) that receive *notice*: those
    whose filters select it, never the endpoint it is about. Pure."""
    return [endpoint_id for endpoint_id, filters in subscribers
            if endpoint_id != notice.subject_endpoint_id
            and matches_any(list(filters), notice.event_type)]


def endpoint_states(conn: Connection, endpoint_ids: Sequence[str], *, lock: bool = False
                    ) -> dict[str, EndpointState]:
    """The endpoints' states by id; with *lock*, their rows stay locked until the commit
    (taken in id order), so a later read in the transaction sees only this one's changes."""
    if not endpoint_ids:
        return {}
    query = (select(Endpoint.id, Endpoint.tenant_id, Endpoint.environment, Endpoint.enabled,
                    Endpoint.circuit_state, Endpoint.circuit_failures, Endpoint.circuit_retry_at,
                    Endpoint.failing_since)
             .where(Endpoint.id.in_(sorted(set(endpoint_ids)))).order_by(Endpoint.id))
    if lock:
        query = query.with_for_update()
    return {row[0]: EndpointState(row[1], row[2], bool(row[3]), row[4] or "closed",
                                  row[5] or 0, row[6], row[7])
            for row in conn.execute(query)}


def change_notices(before: Mapping[str, EndpointState], after: Mapping[str, EndpointState],
                   disabled_reasons: Mapping[str, str], *, now: datetime) -> list[Notice]:
    """The notices for what changed between *before* and *after* in one record: disabled
    (by a 410: *disabled_reasons* says why), failing, recovered."""
    notices: list[Notice] = []
    for endpoint_id, event_type in transitions(before, after):
        old, new = before[endpoint_id], after[endpoint_id]
        data: dict[str, Any]
        if event_type == ENDPOINT_DISABLED:
            data = endpoint_disabled(
                endpoint_id, reason=disabled_reasons.get(endpoint_id, "disabled"),
                trigger=TRIGGER_GONE, at=now, failing_since=new.failing_since)
        elif event_type == ENDPOINT_FAILING:
            data = endpoint_failing(endpoint_id, new, now)
        elif event_type == ENDPOINT_RECOVERED:
            data = endpoint_recovered(endpoint_id, old, now)
        else:  # pragma: no cover - transitions() names only these three
            continue
        notices.append(Notice(new.tenant_id, new.environment, event_type, endpoint_id, data))
    return notices


def exhausted_notices(conn: Connection, delivery_ids: Sequence[str], *, now: datetime
                      ) -> list[Notice]:
    """One ``hookline.delivery.exhausted`` per delivery of *delivery_ids* that is dead
    ``exhausted``, unless it delivered an operational event."""
    if not delivery_ids:
        return []
    rows = conn.execute(
        select(Delivery.id, Delivery.endpoint_id, Delivery.tenant_id, Delivery.event_id,
               Event.event_type, Event.environment, Delivery.attempt_count,
               Delivery.last_status_code, Delivery.last_error, Delivery.dead_at)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.id.in_(sorted(set(delivery_ids))),
               Delivery.state == DeliveryState.DEAD.value,
               Delivery.dead_reason == DeadReason.EXHAUSTED.value)
        .order_by(Delivery.id)).all()
    return [Notice(row[2], row[5], DELIVERY_EXHAUSTED, row[1], delivery_exhausted(
                delivery_id=row[0], endpoint_id=row[1], event_id=row[3], event_type=row[4],
                attempts=row[6], last_status_code=row[7], last_error=row[8],
                at=row[9] or now))
            for row in rows if announces_exhaustion(row[4])]


def write(conn: Connection, notices: Sequence[Notice], *, now: datetime
          ) -> list[tuple[str, str]]:
    """Write each notice that has recipients as an event with its deliveries, queued (the
    caller sends their messages after the commit). Returns ``(delivery id, endpoint id)``."""
    places: dict[tuple[str, str], list[tuple[str, Sequence[str]]]] = {}
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for notice in notices:
        place = (notice.tenant_id, notice.environment)
        if place not in places:
            places[place] = [(row[0], tuple(row[1] or ())) for row in conn.execute(
                select(Endpoint.id, Endpoint.event_types)
                .where(Endpoint.tenant_id == notice.tenant_id, Endpoint.enabled,
                       Endpoint.deleted_at.is_(None), Endpoint.one_off.is_(False),
                       Endpoint.environment == notice.environment)
                .order_by(Endpoint.created_at, Endpoint.id))]
        targets = recipients(places[place], notice)
        if not targets:
            continue
        event_id = new_id("evt")
        events.append({"id": event_id, "tenant_id": notice.tenant_id,
                       "event_type": notice.event_type, "payload": notice.data,
                       "occurred_at": now, "idempotency_key": None,
                       "environment": notice.environment, "created_at": now})
        deliveries.extend(
            {"id": new_id("dlv"), "event_id": event_id, "endpoint_id": endpoint_id,
             "tenant_id": notice.tenant_id, "state": DeliveryState.PENDING,
             "attempt_count": 0, "next_attempt_at": now, "queued_at": now,
             "requeue_count": 0, "created_at": now, "updated_at": now}
            for endpoint_id in targets)
    if events:
        conn.execute(insert(Event), events)
        conn.execute(insert(Delivery), deliveries)
    return [(d["id"], d["endpoint_id"]) for d in deliveries]


def announce(conn: Connection, build: Callable[[], Sequence[Notice]], *, now: datetime
             ) -> list[tuple[str, str]]:
    """Build the notices and write them in a savepoint of the caller's transaction.

    Any error is logged and rolls back the announcement alone: the caller's own
    writes (a batch's record, a sweep) go on. Returns the deliveries to send.
    """
    try:
        with conn.begin_nested():
            notices = build()
            pairs = write(conn, notices, now=now)
        for notice in notices:
            log.info("%s about endpoint %s of tenant %s", notice.event_type,
                     notice.subject_endpoint_id, notice.tenant_id)
        return pairs
    except Exception:
        log.exception("operational events could not be written; the rest goes on without them")
        return []


def send(dispatcher: Dispatcher, pairs: Sequence[tuple[str, str]],
         park: Callable[[list[str]], None]) -> int:
    """Send the messages of committed operational deliveries; park what the broker refused.

    Never raises: a delivery left queued without a message is sent again by the
    sweeper's lost-message check. Returns the number parked.
    """
    if not pairs:
        return 0
    try:
        failed = dispatcher.enqueue(list(pairs))
        if failed:
            park(failed)
        return len(failed)
    except Exception:
        log.exception("sending operational deliveries failed; the sweeper will send them")
        return 0


def record_notices(conn: Connection, *, before: Mapping[str, EndpointState],
                   disabled_reasons: Mapping[str, str], exhausted: Sequence[str],
                   now: datetime) -> list[Notice]:
    """What one record announces: its endpoints' changes since *before* (read again now,
    in the same transaction) and its deliveries dead-lettered ``exhausted``."""
    after = endpoint_states(conn, list(before))
    return [*change_notices(before, after, disabled_reasons, now=now),
            *exhausted_notices(conn, exhausted, now=now)]
