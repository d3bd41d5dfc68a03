"""Writing outbox rows: inside the caller's transaction, with a wake-up for the producer.

Both change capture and polling watchers end here. Each row gets its event id now
(``evt_…``): it is the id the event keeps when the producer relays it. The payload is
checked with :func:`app.publishing.encode_payload` as it is written; a payload over
the size limit does not fail the caller's transaction but is written ``failed`` with
the reason, so it is visible and can be retried once the limit is raised.

On PostgreSQL the same transaction issues ``pg_notify`` on :data:`NOTIFY_CHANNEL`,
which PostgreSQL delivers on commit and drops on rollback: the producer wakes when,
and only when, there is something to relay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, literal, select

from app.changefeed.models import OutboxEntry, OutboxState
from app.changefeed.rules import Emission
from app.errors import InvalidPayload, PayloadTooLarge
from app.ids import new_id
from app.publishing import encode_payload

#: The LISTEN/NOTIFY channel the producer listens on (per database).
NOTIFY_CHANNEL = "hookline_outbox"


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One outbox row to write."""

    event_id: str
    tenant_ref: str
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime
    source: str
    state: str = OutboxState.PENDING
    last_error: str | None = None


def records_for(emission: Emission, tenants: Iterable[str], *, source: str, now: datetime,
                max_payload_bytes: int,
                id_factory: Callable[[str], str] = new_id) -> list[OutboxRecord]:
    """One record per tenant for *emission*, each with its own event id.

    ``InvalidPayload`` (not JSON-serialisable) is raised: it is a mistake in the watch.
    A payload over *max_payload_bytes* is recorded ``failed`` with the reason.
    """
    state, error = OutboxState.PENDING, None
    try:
        payload = encode_payload(emission.payload, max_payload_bytes)
    except PayloadTooLarge as exc:
        payload, state, error = emission.payload, OutboxState.FAILED, str(exc)
    except InvalidPayload as exc:
        raise InvalidPayload(f"{source} → {emission.event_type}: {exc}") from None
    return [OutboxRecord(event_id=id_factory("evt"), tenant_ref=tenant,
                         event_type=emission.event_type, payload=payload, occurred_at=now,
                         source=source, state=state, last_error=error)
            for tenant in tenants]


def write_records(connection: Connection, records: Sequence[OutboxRecord], *, now: datetime) -> None:
    """Insert *records* on *connection* (the caller's transaction) and wake the producer."""
    if not records:
        return
    connection.execute(insert(OutboxEntry), [
        {"event_id": r.event_id, "tenant_ref": r.tenant_ref, "event_type": r.event_type,
         "payload": r.payload, "occurred_at": r.occurred_at, "source": r.source,
         "state": r.state, "last_error": r.last_error, "created_at": now}
        for r in records
    ])
    notify(connection)


def notify(connection: Connection) -> None:
    """Wake listening producers when this transaction commits (PostgreSQL; a no-op elsewhere)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_notify(literal(NOTIFY_CHANNEL), literal(""))))
