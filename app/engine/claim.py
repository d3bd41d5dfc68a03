"""Step 1, claim: take due deliveries for this worker, with everything needed to send them.

One transaction: a conditional ``UPDATE … RETURNING`` moves each due, claimable row to
``in_flight``, counts the attempt (so a message that kills its worker every time runs
out of budget) and sets a lease the attempt cannot outlive; then one read of the
endpoints and one of the events, in plain Core rows, never ORM objects. A duplicate
message finds nothing claimable and claims nothing.

The endpoint's circuit (:mod:`app.engine.circuit`) is read here too: while it is open
its deliveries are claimed but marked deferred, and once its cool-off is over one
batch, fleet-wide, takes the probe with a conditional update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, select, update

from app.engine.circuit import Circuit, CircuitState, start_probe
from app.models import CLAIMABLE_STATES, Delivery, DeliveryState, Endpoint, Event

#: A message may arrive this much before its delivery's due time and still be taken.
CLOCK_SKEW = timedelta(seconds=1)
#: While a probe is under way, other deliveries to its endpoint look again this soon.
PROBE_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """What sending needs of an endpoint (the attributes rendering reads, same names)."""

    id: str
    tenant_id: str
    url: str
    contract: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    headers: Mapping[str, str] | None
    auth_header: str | None
    timeout_seconds: float | None
    max_attempts: int | None
    enabled: bool
    deleted_at: datetime | None
    circuit: Circuit = field(default_factory=Circuit)


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    tenant_id: str
    event_type: str
    payload: Mapping[str, Any]
    occurred_at: datetime


@dataclass(slots=True)
class Claim:
    """One claimed delivery: its attempt number, endpoint, event, and how it may be sent."""

    delivery_id: str
    attempt_number: int
    endpoint: EndpointRow
    event: EventRow
    #: Set when the endpoint's circuit is open: no request, the delivery waits until then.
    deferred_until: datetime | None = None
    #: This attempt is the probe of a half-open circuit.
    probe: bool = False


_ENDPOINT_COLUMNS = (
    Endpoint.id, Endpoint.tenant_id, Endpoint.url, Endpoint.contract, Endpoint.secret,
    Endpoint.previous_secret, Endpoint.previous_secret_expires_at, Endpoint.headers,
    Endpoint.auth_header, Endpoint.timeout_seconds, Endpoint.max_attempts, Endpoint.enabled,
    Endpoint.deleted_at, Endpoint.circuit_state, Endpoint.circuit_failures,
    Endpoint.circuit_cooloff_seconds, Endpoint.circuit_retry_at,
)


def claim(conn: Connection, delivery_ids: Sequence[str], *, now: datetime,
          lease_seconds: float, read_timeout: float,
          probe_seconds: float) -> tuple[list[Claim], list[str]]:
    """Claim the due ones of *delivery_ids* inside the caller's transaction.

    Returns the claims, in the order of *delivery_ids*, and the ids skipped (unknown,
    not due, already taken or finished). Every claimed row's lease is *lease_seconds*
    from *now*, plus whatever an endpoint's own read timeout adds to *read_timeout*.
    """
    table = Delivery.__table__
    lease = now + timedelta(seconds=lease_seconds)
    returned = conn.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)),
               Delivery.state.in_(CLAIMABLE_STATES),
               Delivery.next_attempt_at <= now + CLOCK_SKEW)
        .values(state=DeliveryState.IN_FLIGHT, attempt_count=Delivery.attempt_count + 1,
                lease_expires_at=lease, updated_at=now)
        .returning(table.c.id, table.c.attempt_count, table.c.endpoint_id, table.c.event_id)
    ).all()
    if not returned:
        return [], list(delivery_ids)
    endpoint_ids = {row[2] for row in returned}
    event_ids = {row[3] for row in returned}
    endpoints = {row.id: _endpoint(row) for row in conn.execute(
        select(*_ENDPOINT_COLUMNS).where(Endpoint.id.in_(endpoint_ids)))}
    events = {row.id: EventRow(row.id, row.tenant_id, row.event_type, row.payload,
                               row.occurred_at)
              for row in conn.execute(
                  select(Event.id, Event.tenant_id, Event.event_type, Event.payload,
                         Event.occurred_at).where(Event.id.in_(event_ids)))}
    _lengthen_leases(conn, returned, endpoints, lease=lease, read_timeout=read_timeout)
    probes = _take_probes(conn, endpoints.values(), now=now, probe_seconds=probe_seconds)
    by_id = {row[0]: row for row in returned}
    claims: list[Claim] = []
    probing: set[str] = set()
    for delivery_id in delivery_ids:
        row = by_id.pop(delivery_id, None)
        if row is None:
            continue
        endpoint = endpoints[row[2]]
        item = Claim(delivery_id, row[1], endpoint, events[row[3]])
        circuit = endpoint.circuit
        if endpoint.id in probes and endpoint.id not in probing:
            item.probe = True
            probing.add(endpoint.id)
        elif endpoint.id in probes or circuit.state is CircuitState.HALF_OPEN:
            # A probe is under way (this batch's or another's): look again shortly.
            item.deferred_until = now + timedelta(seconds=PROBE_WAIT_SECONDS)
        elif circuit.state is not CircuitState.CLOSED:
            # Open and cooling off: nothing goes before the probe may.
            item.deferred_until = max(circuit.retry_at or now, now + timedelta(seconds=1))
        claims.append(item)
    claimed = {c.delivery_id for c in claims}
    return claims, [i for i in delivery_ids if i not in claimed]


def _endpoint(row: Any) -> EndpointRow:
    circuit = Circuit(CircuitState(row.circuit_state or CircuitState.CLOSED),
                      row.circuit_failures or 0, row.circuit_cooloff_seconds or 0.0,
                      row.circuit_retry_at)
    return EndpointRow(row.id, row.tenant_id, row.url, row.contract, row.secret,
                       row.previous_secret, row.previous_secret_expires_at, row.headers,
                       row.auth_header, row.timeout_seconds, row.max_attempts, row.enabled,
                       row.deleted_at, circuit)


def _lengthen_leases(conn: Connection, returned: Sequence[Any],
                     endpoints: Mapping[str, EndpointRow], *, lease: datetime,
                     read_timeout: float) -> None:
    """Endpoints may have a longer timeout than the default the lease was set for."""
    longer = [
        {"b_id": row[0], "b_lease": lease + timedelta(seconds=extra)}
        for row in returned
        if (extra := (endpoints[row[2]].timeout_seconds or read_timeout) - read_timeout) > 0
    ]
    if longer:
        table = Delivery.__table__
        assert isinstance(table, Table)
        conn.execute(update(table).where(table.c.id == bindparam("b_id"))
                     .values(lease_expires_at=bindparam("b_lease")), longer)


def _take_probes(conn: Connection, endpoints: Any, *, now: datetime,
                 probe_seconds: float) -> set[str]:
    """Endpoints whose probe this batch won; their circuit is half-open from now on."""
    won: set[str] = set()
    for endpoint in endpoints:
        circuit = endpoint.circuit
        if not circuit.probe_due(now):
            continue
        probing = start_probe(circuit, now, probe_seconds)
        result = conn.execute(
            update(Endpoint)
            .where(Endpoint.id == endpoint.id,
                   Endpoint.circuit_state == circuit.state.value,
                   and_(Endpoint.circuit_retry_at.is_not(None),
                        Endpoint.circuit_retry_at <= now))
            .values(circuit_state=probing.state.value, circuit_retry_at=probing.retry_at)
        )
        if result.rowcount == 1:
            won.add(endpoint.id)
    return won
