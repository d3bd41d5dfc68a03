"""The circuit breaker of one endpoint: when to stop sending, when to probe. Pure.

An endpoint's circuit is ``closed`` while it answers. After ``failure_threshold``
failures in a row (timeouts, refused connections, 5xx: anything that says the
receiver is unwell, not that it rejected the request) it opens: nothing is sent to it
for a cool-off, and its due deliveries are deferred, not attempted. When the cool-off
ends one batch takes the probe (``half_open``, a conditional update in SQL, so one
probe at a time across the fleet); a success closes the circuit, a failure opens it
again for twice as long, up to ``max_cooloff_seconds``.

The state lives on the endpoint's row (:mod:`app.engine.claim` reads it, and
:mod:`app.engine.record` writes it), so every worker of the fleet sees the same one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.classification import TransportError


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    #: Failures in a row that open the circuit.
    failure_threshold: int = 10
    #: The first cool-off; each failed probe doubles it.
    cooloff_seconds: float = 15.0
    max_cooloff_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Circuit:
    """One endpoint's breaker as stored: state, failures in a row, the current cool-off."""

    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    cooloff_seconds: float = 0.0
    #: While open: when a probe may go. While half-open: when the probe counts as lost.
    retry_at: datetime | None = None

    def blocks(self, now: datetime) -> bool:
        """True while nothing may be sent: open and cooling off, or a probe under way."""
        if self.state is CircuitState.CLOSED:
            return False
        return self.retry_at is not None and now < self.retry_at

    def probe_due(self, now: datetime) -> bool:
        """True when the cool-off (or a lost probe's wait) is over and a probe may go."""
        return self.state is not CircuitState.CLOSED and not self.blocks(now)


def is_failure(status: int | None, error: TransportError | None) -> bool:
    """Does this result say the receiver is unwell? (4xx rejections and 2xx do not.)"""
    if status is None:
        return error not in (TransportError.INVALID_REQUEST, TransportError.BLOCKED)
    return status >= 500 or status == 408


def observe(circuit: Circuit, failed: bool, now: datetime, policy: CircuitPolicy) -> Circuit:
    """The breaker after one more result from the endpoint."""
    if not failed:
        if circuit.state is CircuitState.CLOSED and circuit.failures == 0:
            return circuit
        return Circuit()
    if circuit.state is CircuitState.HALF_OPEN or (
            circuit.state is CircuitState.OPEN and circuit.retry_at is not None
            and now >= circuit.retry_at):
        cooloff = min(max(circuit.cooloff_seconds, policy.cooloff_seconds) * 2,
                      policy.max_cooloff_seconds)
        return Circuit(CircuitState.OPEN, circuit.failures + 1, cooloff,
                       now + timedelta(seconds=cooloff))
    if circuit.state is CircuitState.OPEN:
        return replace(circuit, failures=circuit.failures + 1)
    failures = circuit.failures + 1
    if failures >= policy.failure_threshold:
        return Circuit(CircuitState.OPEN, failures, policy.cooloff_seconds,
                       now + timedelta(seconds=policy.cooloff_seconds))
    return replace(circuit, failures=failures)


def start_probe(circuit: Circuit, now: datetime, probe_seconds: float) -> Circuit:
    """The breaker while one probe is under way (it counts as lost after *probe_seconds*)."""
    return replace(circuit, state=CircuitState.HALF_OPEN,
                   retry_at=now + timedelta(seconds=probe_seconds))
