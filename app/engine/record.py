"""Step 5, record: a batch's attempts and outcomes in one transaction.

Attempts are inserted in one multi-row statement; delivery rows are updated in one
executemany, each *conditional on the attempt this worker claimed*: ``state =
in_flight AND attempt_count = <claimed number>``. A worker that lost its lease (the
sweeper recorded its attempt as lost and another worker took the delivery) therefore
cannot overwrite the newer attempt's outcome. A deferred delivery gives its counted
attempt back. Endpoint changes (410 disables, circuit transitions) go in the same
transaction, and so do the operational events those changes and the exhausted
dead letters announce (:mod:`app.announce`: written in a savepoint, never failing the
record; the ledger's ``announced`` deliveries are sent after the commit). The rows of
the endpoints a record may change are locked and read first, so what changed is seen
exactly. Each failure also keeps the endpoint's failing streak (``failing_since``),
and each success ends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from app.announce import announce, endpoint_states, record_notices
from app.engine.circuit import Circuit, CircuitPolicy, CircuitState
from app.models import Attempt, DeadReason, Delivery, DeliveryState, Endpoint
from app.subscribers import bump_endpoints_version


def storable(text: str | None, limit: int | None = None) -> str | None:
    """*text* as every backend can keep it: no NUL, no lone surrogates, at most *limit*.

    Receivers choose what they answer; PostgreSQL refuses a NUL in a text column and
    UTF-8 has no lone surrogates, so either would fail the whole batch's record.
    """
    if text is None:
        return None
    if limit is not None:
        text = text[:limit]
    cleaned = text.replace("\x00", "\ufffd")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", errors="replace").decode("utf-8")
    return cleaned


@dataclass(slots=True)
class Ledger:
    """What one batch writes: attempt rows, delivery updates, endpoint changes."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    disable: dict[str, str] = field(default_factory=dict)
    #: Absolute circuit states, written as they are: the outcome of a probe this batch owned.
    circuits: dict[str, Circuit] = field(default_factory=dict)
    #: Per endpoint, in order, whether each answer counted as a failure (not probes).
    observations: dict[str, list[bool]] = field(default_factory=dict)
    #: Set by :func:`record`: the operational deliveries it wrote, to send after the commit.
    announced: list[tuple[str, str]] = field(default_factory=list)

    def attempt(self, *, delivery_id: str, attempt_number: int, started_at: datetime,
                duration_ms: float | None, status_code: int | None, error_class: str | None,
                error_message: str | None, response_excerpt: str | None) -> None:
        self.attempts.append({
            "delivery_id": delivery_id, "attempt_number": attempt_number,
            "started_at": started_at,
            "duration_ms": None if duration_ms is None else round(duration_ms, 3),
            "status_code": status_code, "error_class": storable(error_class, 120),
            "error_message": storable(error_message, 2000),
            "response_excerpt": storable(response_excerpt) or None,
        })

    def update(self, delivery_id: str, claimed_attempt: int, now: datetime,
               state: DeliveryState, *, status: int | None = None, error: str | None = None,
               next_attempt_at: datetime | None = None, queued_at: datetime | None = None,
               dead_reason: str | None = None, succeeded_at: datetime | None = None,
               give_back_attempt: bool = False) -> None:
        self.updates.append({
            "b_id": delivery_id, "b_claimed": claimed_attempt,
            "attempt_count": claimed_attempt - 1 if give_back_attempt else claimed_attempt,
            "state": state, "updated_at": now, "last_status_code": status,
            "last_error": storable(error, 2000), "next_attempt_at": next_attempt_at or now,
            "queued_at": queued_at, "lease_expires_at": None, "dead_reason": dead_reason,
            "dead_at": now if state is DeliveryState.DEAD else None,
            "succeeded_at": succeeded_at,
        })


@cache
def _insert_attempts() -> Any:
    return insert(Attempt)


@cache
def _update_outcome() -> Any:
    """One delivery's outcome, only where this worker's claimed attempt is still the live one."""
    table = Delivery.__table__
    assert isinstance(table, Table)
    return (update(table)
            .where(and_(table.c.id == bindparam("b_id"),
                        table.c.state == DeliveryState.IN_FLIGHT.value,
                        table.c.attempt_count == bindparam("b_claimed")))
            .values({key: bindparam(key) for key in _UPDATE_KEYS}))


_UPDATE_KEYS = ("attempt_count", "state", "updated_at", "last_status_code", "last_error",
                "next_attempt_at", "queued_at", "lease_expires_at", "dead_reason", "dead_at",
                "succeeded_at")


def record(conn: Connection, ledger: Ledger, *, now: datetime,
           circuit: CircuitPolicy | None = None) -> set[str]:
    """Write *ledger* inside the caller's transaction; returns the ids it actually updated.

    A delivery missing from the answer was taken over (its lease expired): its outcome
    here is dropped, and its attempt row is kept as the record of what was sent.
    """
    table = Delivery.__table__
    assert isinstance(table, Table)
    before = endpoint_states(conn, watched_endpoints(ledger), lock=True)
    if ledger.attempts:
        conn.execute(_insert_attempts(), ledger.attempts)
    written: set[str] = set()
    if ledger.updates:
        result = conn.execute(_update_outcome(), ledger.updates)
        ids = [u["b_id"] for u in ledger.updates]
        if result.rowcount == len(ids):
            written = set(ids)
        else:  # rare: some were taken over; ours are the rows that now hold what we wrote
            wrote = {u["b_id"]: (u["updated_at"], u["attempt_count"], u["state"])
                     for u in ledger.updates}
            rows = conn.execute(select(table.c.id, table.c.updated_at, table.c.attempt_count,
                                       table.c.state).where(table.c.id.in_(ids))).all()
            written = {row[0] for row in rows if (row[1], row[2], row[3]) == wrote[row[0]]}
    for endpoint_id, reason in ledger.disable.items():
        tenant_id = conn.scalar(update(Endpoint).where(Endpoint.id == endpoint_id)
                                .values(enabled=False, disabled_reason=reason, updated_at=now)
                                .returning(Endpoint.tenant_id))
        if tenant_id is not None:
            bump_endpoints_version(conn, {tenant_id})
    for endpoint_id, state in ledger.circuits.items():
        closed = state.state is CircuitState.CLOSED
        conn.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(
            circuit_state=state.state.value, circuit_failures=state.failures,
            circuit_cooloff_seconds=state.cooloff_seconds, circuit_retry_at=state.retry_at,
            failing_since=None if closed else _streak_goes_on(now)))
    for endpoint_id, failures in ledger.observations.items():
        count_failures(conn, endpoint_id, failures, now=now, policy=circuit or CircuitPolicy())
    exhausted = [u["b_id"] for u in ledger.updates
                 if u["dead_reason"] == DeadReason.EXHAUSTED and u["b_id"] in written]
    if before or exhausted:
        ledger.announced = announce(conn, lambda: record_notices(
            conn, before=before, disabled_reasons=ledger.disable, exhausted=exhausted,
            now=now), now=now)
    return written


def watched_endpoints(ledger: Ledger) -> list[str]:
    """The endpoints whose state this record may change: disabled, a probe's outcome, or
    failures counted (answers that were all successes cannot open or close a circuit)."""
    return sorted({*ledger.disable, *ledger.circuits,
                   *(e for e, seen in ledger.observations.items() if any(seen))})


def _streak_goes_on(now: datetime) -> Any:
    """``failing_since`` after a failure: kept if a streak is under way, else *now*."""
    return func.coalesce(Endpoint.failing_since, literal(now, type_=Endpoint.failing_since.type))


def count_failures(conn: Connection, endpoint_id: str, failures: Sequence[bool], *,
                   now: datetime, policy: CircuitPolicy) -> None:
    """Add a batch's answers to the endpoint's count of failures in a row, in SQL.

    An increment, not a snapshot write, so batches of several workers add up, and one
    that was claimed before the circuit opened cannot close it again: only a probe
    closes an open circuit. The failures after the batch's last success count; a
    success resets a closed circuit's count. The failing streak
    (:func:`app.operational.failing_since_after`) ends at a success and starts at the
    first failure after one.
    """
    tail = 0
    for failed in reversed(failures):
        if not failed:
            break
        tail += 1
    reset = tail < len(failures)
    closed = Endpoint.circuit_state == CircuitState.CLOSED.value
    if tail == 0:
        conn.execute(update(Endpoint).where(
            Endpoint.id == endpoint_id,
            or_(and_(closed, Endpoint.circuit_failures != 0), Endpoint.failing_since.is_not(None)))
            .values(circuit_failures=case((closed, 0), else_=Endpoint.circuit_failures),
                    failing_since=None))
        return
    counted = case((closed, 0), else_=Endpoint.circuit_failures) if reset \
        else Endpoint.circuit_failures
    new = counted + tail
    opening = and_(closed, new >= policy.failure_threshold)
    conn.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(
        failing_since=literal(now, type_=Endpoint.failing_since.type) if reset
        else _streak_goes_on(now),
        circuit_failures=new,
        circuit_state=case((opening, CircuitState.OPEN.value), else_=Endpoint.circuit_state),
        circuit_cooloff_seconds=case((opening, policy.cooloff_seconds),
                                     else_=Endpoint.circuit_cooloff_seconds),
        circuit_retry_at=case((opening, now + timedelta(seconds=policy.cooloff_seconds)),
                              else_=Endpoint.circuit_retry_at),
    ))


def merge(ledgers: Sequence[Ledger]) -> Ledger:
    """Several batches' ledgers as one, to record them in one transaction."""
    merged = Ledger()
    for ledger in ledgers:
        merged.attempts += ledger.attempts
        merged.updates += ledger.updates
        merged.disable.update(ledger.disable)
        merged.circuits.update(ledger.circuits)
        for endpoint_id, failures in ledger.observations.items():
            merged.observations.setdefault(endpoint_id, []).extend(failures)
    return merged


def split(ledger: Ledger) -> list[Ledger]:
    """One ledger per delivery (endpoint changes ride with the first), to record one by one
    when the batch's record was refused."""
    parts: list[Ledger] = []
    attempts: dict[str, list[dict[str, Any]]] = {}
    for row in ledger.attempts:
        attempts.setdefault(row["delivery_id"], []).append(row)
    for update_row in ledger.updates:
        parts.append(Ledger(attempts=attempts.pop(update_row["b_id"], []), updates=[update_row]))
    for rows in attempts.values():
        parts.append(Ledger(attempts=rows))
    if not parts:
        parts.append(Ledger())
    parts[0].disable, parts[0].circuits = ledger.disable, ledger.circuits
    parts[0].observations = ledger.observations
    return parts


def stripped(ledger: Ledger) -> Ledger:
    """The same outcome with every receiver-supplied text dropped: what still fits."""
    attempts = [row | {"response_excerpt": None, "error_message": "the result could not be stored",
                       "error_class": "UnstorableResult"} for row in ledger.attempts]
    updates = [row | {"last_error": "the result could not be stored"} for row in ledger.updates]
    return Ledger(attempts=attempts, updates=updates, disable=ledger.disable,
                  circuits=ledger.circuits, observations=ledger.observations)


def park(conn: Connection, delivery_ids: Sequence[str]) -> None:
    """Forget that a message was sent for these deliveries: the sweeper will send one."""
    if delivery_ids:
        conn.execute(update(Delivery).where(Delivery.id.in_(list(delivery_ids)))
                     .values(queued_at=None).execution_options(synchronize_session=False))
