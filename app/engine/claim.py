"""Step 1, claim: take due deliveries for this worker, with everything needed to send them.

One transaction: a conditional ``UPDATE … RETURNING`` moves each due, claimable row to
``in_flight``, counts the attempt (so a message that kills its worker every time runs
out of budget) and sets a lease its process renews while it lives; then one read of the
endpoints and one of the events, in plain Core rows, never ORM objects. A duplicate
message finds nothing claimable and claims nothing.

An ordered endpoint's delivery is taken only when no earlier delivery of its key is
unfinished; one refused for that is held back in SQL (:mod:`app.engine.ordering`).

The endpoint's circuit (:mod:`app.engine.circuit`) is read here too: while it is open
its deliveries are claimed but marked deferred, and once its cool-off is over one
batch, fleet-wide, takes the probe with a conditional update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, select, update

from app.engine.circuit import Circuit, CircuitState, start_probe
from app.engine.ordering import hold_back, may_go
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
    #: Its rate limit (:mod:`app.engine.ratelimit`); None: no limit, no Redis round trip.
    rate_limit_per_second: float | None = None
    rate_limit_burst: int | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    tenant_id: str
    event_type: str
    payload: Mapping[str, Any]
    occurred_at: datetime
    ordering_key: str | None = None
    sequence: int | None = None


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
    #: Set for an ordered endpoint: when this delivery finishes, the key's next one goes.
    ordering_key: str | None = None


_ENDPOINT_COLUMNS = (
    Endpoint.id, Endpoint.tenant_id, Endpoint.url, Endpoint.contract, Endpoint.secret,
    Endpoint.previous_secret, Endpoint.previous_secret_expires_at, Endpoint.headers,
    Endpoint.auth_header, Endpoint.timeout_seconds, Endpoint.max_attempts, Endpoint.enabled,
    Endpoint.deleted_at, Endpoint.circuit_state, Endpoint.circuit_failures,
    Endpoint.circuit_cooloff_seconds, Endpoint.circuit_retry_at,
    Endpoint.rate_limit_per_second, Endpoint.rate_limit_burst,
)


def claim(conn: Connection, delivery_ids: Sequence[str], *, now: datetime,
          lease_seconds: float, probe_seconds: float) -> tuple[list[Claim], list[str]]:
    """Claim the due ones of *delivery_ids* inside the caller's transaction.

    Returns the claims, in the order of *delivery_ids*, and the ids skipped (unknown,
    not due, already taken or finished). Every claimed row's lease is *lease_seconds*
    from *now*; the claiming process renews it while it lives (:mod:`app.engine.lease`),
    so an endpoint's long read timeout needs no longer lease.
    """
    lease = now + timedelta(seconds=lease_seconds)
    params = {"ids": list(delivery_ids), "due": now + CLOCK_SKEW, "lease": lease, "now": now}
    endpoints: dict[str, EndpointRow] = {}
    events: dict[str, EventRow] = {}
    returned: list[tuple[Any, ...]] = []
    if conn.dialect.name == "postgresql":
        # One round trip: the claim and the rows it needs, in one statement.
        for row in conn.execute(_claim_and_read(), params):
            returned.append((row.d_id, row.d_attempts, row.d_endpoint, row.d_event,
                             row.d_key))
            endpoints.setdefault(row.id, _endpoint(row))
            events.setdefault(row.e_id, EventRow(row.e_id, row.e_tenant, row.e_type,
                                                 row.e_payload, row.e_occurred, row.e_key,
                                                 row.e_sequence))
    else:
        returned = [tuple(row) for row in conn.execute(_claim_statement(), params)]
        if returned:
            endpoints = {row.id: _endpoint(row) for row in conn.execute(
                _endpoints_statement(), {"ids": list({row[2] for row in returned})})}
            events = {row.e_id: EventRow(row.e_id, row.e_tenant, row.e_type, row.e_payload,
                                         row.e_occurred, row.e_key, row.e_sequence)
                      for row in conn.execute(_events_statement(),
                                              {"ids": list({row[3] for row in returned})})}
    if len(returned) < len(delivery_ids):
        got = {row[0] for row in returned}
        hold_back(conn, [i for i in delivery_ids if i not in got], due=now + CLOCK_SKEW)
    if not returned:
        return [], list(delivery_ids)
    probes = _take_probes(conn, endpoints.values(), now=now, probe_seconds=probe_seconds)
    by_id = {row[0]: row for row in returned}
    claims: list[Claim] = []
    probing: set[str] = set()
    for delivery_id in delivery_ids:
        taken = by_id.pop(delivery_id, None)
        if taken is None:
            continue
        endpoint = endpoints[taken[2]]
        item = Claim(delivery_id, taken[1], endpoint, events[taken[3]],
                     ordering_key=taken[4])
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


_EVENT_COLUMNS = (
    Event.id.label("e_id"), Event.tenant_id.label("e_tenant"), Event.event_type.label("e_type"),
    Event.payload.label("e_payload"), Event.occurred_at.label("e_occurred"),
    Event.ordering_key.label("e_key"), Event.sequence.label("e_sequence"),
)


@cache
def _claim_statement() -> Any:
    """The claim: due, claimable rows → in_flight, attempt counted, leased (built once)."""
    table = Delivery.__table__
    assert isinstance(table, Table)
    return (
        update(table)
        .where(table.c.id.in_(bindparam("ids", expanding=True)),
               table.c.state.in_([s.value for s in CLAIMABLE_STATES]),
               table.c.next_attempt_at <= bindparam("due"),
               may_go(table))
        .values(state=DeliveryState.IN_FLIGHT.value, attempt_count=table.c.attempt_count + 1,
                lease_expires_at=bindparam("lease"), updated_at=bindparam("now"),
                blocked=False)
        .returning(table.c.id.label("d_id"), table.c.attempt_count.label("d_attempts"),
                   table.c.endpoint_id.label("d_endpoint"), table.c.event_id.label("d_event"),
                   table.c.ordering_key.label("d_key"))
    )


@cache
def _claim_and_read() -> Any:
    """PostgreSQL: the claim as a CTE, joined to its endpoints and events."""
    claimed = _claim_statement().cte("claimed")
    return (
        select(claimed, *_ENDPOINT_COLUMNS, *_EVENT_COLUMNS)
        .join_from(claimed, Endpoint, Endpoint.id == claimed.c.d_endpoint)
        .join(Event, Event.id == claimed.c.d_event)
    )


@cache
def _endpoints_statement() -> Any:
    return select(*_ENDPOINT_COLUMNS).where(Endpoint.id.in_(bindparam("ids", expanding=True)))


@cache
def _events_statement() -> Any:
    return select(*_EVENT_COLUMNS).where(Event.id.in_(bindparam("ids", expanding=True)))


def _endpoint(row: Any) -> EndpointRow:
    circuit = Circuit(CircuitState(row.circuit_state or CircuitState.CLOSED),
                      row.circuit_failures or 0, row.circuit_cooloff_seconds or 0.0,
                      row.circuit_retry_at)
    return EndpointRow(row.id, row.tenant_id, row.url, row.contract, row.secret,
                       row.previous_secret, row.previous_secret_expires_at, row.headers,
                       row.auth_header, row.timeout_seconds, row.max_attempts, row.enabled,
                       row.deleted_at, circuit, row.rate_limit_per_second,
                       row.rate_limit_burst)


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
