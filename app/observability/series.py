"""Metric names and the pure shaping of raw counts into bounded series.

Nothing here does I/O. Label values are always drawn from small, known sets (outcomes,
contracts, dead reasons, status classes, partition queues) or from ids (tenants,
endpoints); never from URLs, payloads, headers or secrets. Per-endpoint series are
capped (:func:`select_endpoints`), so a tenant adding endpoints cannot grow the
scrape without bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.names import partition_queue
from app.partitioning import partition_for

PREFIX = "hookline"

#: Buckets of the attempt duration histogram, in seconds: a fast receiver answers in
#: tens of milliseconds, the default read timeout is 30 s.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: A delivery's outcome after one pass through the engine.
SUCCEEDED = "succeeded"
RETRYING = "retrying"
DEAD = "dead"
DEFERRED = "deferred"
SUPERSEDED = "superseded"
OUTCOMES = (SUCCEEDED, RETRYING, DEAD, DEFERRED, SUPERSEDED)

#: The delivery states that count as waiting (not yet delivered, not dead).
WAITING_STATES = ("pending", "retry_scheduled", "in_flight")


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx`` for an HTTP status, ``error`` when no status came back."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def outcome_of(delivery_id: str, *, succeeded: set[str], dead: set[str], deferred: set[str],
               retrying: set[str], superseded: set[str]) -> str | None:
    """The one outcome label of a claimed delivery (deferred wins over its retry)."""
    for label, members in ((SUPERSEDED, superseded), (SUCCEEDED, succeeded), (DEAD, dead),
                           (DEFERRED, deferred), (RETRYING, retrying)):
        if delivery_id in members:
            return label
    return None


def waiting_by_queue(rows: Iterable[tuple[str, str, int]], partitions: int
                     ) -> dict[tuple[str, str], int]:
    """``(endpoint_id, state, count)`` rows → count per ``(queue, state)``.

    Every partition queue and waiting state is present, zero when nothing waits, so a
    drained queue shows 0 instead of disappearing.
    """
    totals = {(partition_queue(p), state): 0 for p in range(partitions) for state in WAITING_STATES}
    for endpoint_id, state, count in rows:
        key = (partition_queue(partition_for(endpoint_id, partitions)), state)
        if key in totals:
            totals[key] += int(count)
    return totals


@dataclass(frozen=True, slots=True)
class EndpointStat:
    """One endpoint's attempts within the window, and how many of them succeeded (2xx)."""

    endpoint_id: str
    tenant_id: str
    attempts: int
    succeeded: int

    @property
    def ratio(self) -> float:
        return self.succeeded / self.attempts if self.attempts else 1.0


def select_endpoints(stats: Iterable[EndpointStat], limit: int) -> tuple[list[EndpointStat], int]:
    """At most *limit* endpoints with attempts, the worst ratio first (then the busiest);
    and how many were left out.

    Worst first because the series exist to be alerted on: an endpoint that fails is
    never the one dropped in favour of a healthy one.
    """
    ranked = sorted((s for s in stats if s.attempts > 0),
                    key=lambda s: (s.ratio, -s.attempts, s.endpoint_id))
    return ranked[:limit], max(len(ranked) - limit, 0)


def counts_by_label(rows: Iterable[tuple[str | None, int]], known: Iterable[str]
                    ) -> Mapping[str, int]:
    """``(label, count)`` rows, with every *known* label present (zero if absent)."""
    totals = dict.fromkeys(known, 0)
    for label, count in rows:
        key = label or "unknown"
        totals[key] = totals.get(key, 0) + int(count)
    return totals


__all__ = [
    "DURATION_BUCKETS", "OUTCOMES", "PREFIX", "WAITING_STATES", "EndpointStat", "counts_by_label",
    "outcome_of", "select_endpoints", "status_class", "waiting_by_queue",
]
