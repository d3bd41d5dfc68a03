"""Operational events: what Hookline tells a tenant about its own endpoints. Pure.

Four event types, in the tenant's catalogue like any other and delivered like any
other (signed, retried, logged), to the tenant's endpoints that subscribe to them:

* ``hookline.endpoint.disabled``: an endpoint was switched off automatically (it
  answered 410 Gone, or it failed continuously for ``HOOKLINE_AUTO_DISABLE_AFTER``);
* ``hookline.delivery.exhausted``: a delivery was dead-lettered because its attempts
  ran out;
* ``hookline.endpoint.failing``: an endpoint's circuit opened (closed → open);
* ``hookline.endpoint.recovered``: its circuit closed again (a probe succeeded).

The rules, all here and all pure:

* **Opt-in.** The catch-all filter ``*`` does not select them (Svix sends operational
  events only to endpoints that ask for them; :mod:`app.matching` applies it): an
  endpoint names them, exactly or with ``hookline.*``, ``hookline.endpoint.*`` or
  ``hookline.delivery.*``.
* **Never a loop.** An event about an endpoint is never delivered to that endpoint
  (the failing one could not take it anyway), and no event is emitted about a
  delivery of an operational event: one that runs out of attempts is dead-lettered
  silently, so two failing endpoints cannot keep telling each other.
* **Only on a change.** Each event marks a transition seen in the transaction that
  made it (:func:`transitions`), so it goes out once per change, not per delivery.
* **Auto-disable.** An endpoint's failing streak starts at its first failure after a
  success (``failing_since`` on its row) and ends at its next success; failures are
  what the circuit breaker counts (timeouts, refused connections, 5xx), not 4xx
  rejections. A streak as long as ``HOOKLINE_AUTO_DISABLE_AFTER`` disables it.
  Re-enabling clears the streak.

Publishing these types through the public paths is refused: only Hookline says them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.errors import InvalidEventType

ENDPOINT_DISABLED = "hookline.endpoint.disabled"
DELIVERY_EXHAUSTED = "hookline.delivery.exhausted"
ENDPOINT_FAILING = "hookline.endpoint.failing"
ENDPOINT_RECOVERED = "hookline.endpoint.recovered"

#: Every operational event type (each is also in the built-in catalogue).
OPERATIONAL_EVENT_TYPES = frozenset({ENDPOINT_DISABLED, DELIVERY_EXHAUSTED, ENDPOINT_FAILING,
                                     ENDPOINT_RECOVERED})

#: What the built-in catalogue says of each.
DESCRIPTIONS: Mapping[str, str] = {
    ENDPOINT_DISABLED: "An endpoint was disabled automatically (410 Gone, or failing too long)",
    DELIVERY_EXHAUSTED: "A delivery was dead-lettered after its last attempt failed",
    ENDPOINT_FAILING: "An endpoint's circuit opened: its deliveries wait",
    ENDPOINT_RECOVERED: "An endpoint's circuit closed again: its deliveries resume",
}

#: ``hookline.endpoint.disabled``'s ``trigger``: a 410 answer, or a failing streak.
TRIGGER_GONE = "gone"
TRIGGER_FAILING = "failing"

#: The longest text an endpoint's ``disabled_reason`` column takes.
MAX_REASON_LENGTH = 200
#: The longest last error a ``hookline.delivery.exhausted`` event carries.
MAX_ERROR_LENGTH = 500

CLOSED = "closed"


def is_operational(event_type: str) -> bool:
    """True for the event types only Hookline itself emits."""
    return event_type in OPERATIONAL_EVENT_TYPES


def refuse_operational(event_type: str) -> None:
    """``InvalidEventType`` for an operational type: callers may subscribe, never publish."""
    if is_operational(event_type):
        raise InvalidEventType(
            f"{event_type!r} is an operational event: Hookline emits it, it cannot be published")


@dataclass(frozen=True, slots=True)
class Notice:
    """One operational event to write: for a tenant's environment, about one endpoint."""

    tenant_id: str
    environment: str
    event_type: str
    #: The endpoint the event is about; it never receives it.
    subject_endpoint_id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointState:
    """What decides an endpoint's operational events, read before and after a change."""

    tenant_id: str
    environment: str
    enabled: bool
    circuit_state: str
    circuit_failures: int = 0
    circuit_retry_at: datetime | None = None
    failing_since: datetime | None = None


def transitions(before: Mapping[str, EndpointState], after: Mapping[str, EndpointState]
                ) -> list[tuple[str, str]]:
    """``(endpoint id, event type)`` for each change from *before* to *after*: disabled
    (enabled → not), failing (circuit closed → not), recovered (circuit not → closed)."""
    found: list[tuple[str, str]] = []
    for endpoint_id in sorted(before):
        old, new = before[endpoint_id], after.get(endpoint_id)
        if new is None:
            continue
        if old.enabled and not new.enabled:
            found.append((endpoint_id, ENDPOINT_DISABLED))
        if old.circuit_state == CLOSED and new.circuit_state != CLOSED:
            found.append((endpoint_id, ENDPOINT_FAILING))
        elif old.circuit_state != CLOSED and new.circuit_state == CLOSED:
            found.append((endpoint_id, ENDPOINT_RECOVERED))
    return found


def announces_exhaustion(event_type: str) -> bool:
    """Whether a delivery of *event_type* that runs out of attempts is announced: never
    for an operational event, so operational events cannot feed each other."""
    return not is_operational(event_type)


def failing_since_after(current: datetime | None, answers: Sequence[bool], now: datetime
                        ) -> datetime | None:
    """The failing streak's start once a batch's answers (True: a failure, in order) are
    counted: cleared by a success, started by the first failure after one, kept by
    failures that continue it. (:func:`app.engine.record.count_failures` writes this in SQL.)"""
    if not answers:
        return current
    if not answers[-1]:
        return None
    if not all(answers):
        return now
    return current or now


def auto_disable_due(failing_since: datetime | None, now: datetime, after_seconds: float) -> bool:
    """True once a failing streak has lasted *after_seconds* (0: never disable)."""
    if failing_since is None or after_seconds <= 0:
        return False
    return now - failing_since >= timedelta(seconds=after_seconds)


def span(seconds: float) -> str:
    """``5 d``, ``36 h``, ``90 min``, ``3 s``: a duration as a person reads it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def iso(moment: datetime | None) -> str | None:
    """UTC, to the millisecond, with a ``Z``: how the events' data write times."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def streak_reason(failing_since: datetime, after_seconds: float) -> str:
    """The ``disabled_reason`` an automatically disabled endpoint carries."""
    return (f"auto-disabled: no successful delivery for {span(after_seconds)} "
            f"(failing since {iso(failing_since)})")[:MAX_REASON_LENGTH]


def endpoint_disabled(endpoint_id: str, *, reason: str, trigger: str, at: datetime,
                      failing_since: datetime | None) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "reason": reason, "trigger": trigger,
            "disabled_at": iso(at), "failing_since": iso(failing_since)}


def delivery_exhausted(*, delivery_id: str, endpoint_id: str, event_id: str, event_type: str,
                       attempts: int, last_status_code: int | None, last_error: str | None,
                       at: datetime) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "endpoint_id": endpoint_id, "event_id": event_id,
            "event_type": event_type, "attempts": attempts,
            "last_status_code": last_status_code,
            "last_error": None if last_error is None else last_error[:MAX_ERROR_LENGTH],
            "dead_at": iso(at)}


def endpoint_failing(endpoint_id: str, state: EndpointState, at: datetime) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "circuit": state.circuit_state,
            "failures": state.circuit_failures, "retry_at": iso(state.circuit_retry_at),
            "failing_since": iso(state.failing_since), "opened_at": iso(at)}


def endpoint_recovered(endpoint_id: str, before: EndpointState, at: datetime) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "circuit": CLOSED,
            "failing_since": iso(before.failing_since), "recovered_at": iso(at)}
