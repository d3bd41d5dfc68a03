"""Counters and histograms the worker processes write: deliveries, attempts, sweeps.

The delivery engine and the sweeper each make one call here after their work is
recorded (:func:`observe_outcomes`, :func:`observe_sweep`). A failure in here is
logged and swallowed: metrics never cost a delivery.

With ``HOOKLINE_METRICS_DIR`` set, :func:`enable_multiprocess` puts prometheus-client
in multiprocess mode before any metric exists: each process writes its values to its
own memory-mapped files in that directory, and ``hookline api`` adds up every file when
``/metrics`` is scraped (:mod:`app.observability.exposition`). Files are named by
host name and pid, so worker containers that share the directory (a volume) never
write to one another's files. Without the setting the values stay in the process.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values

from app.observability.series import DURATION_BUCKETS, PREFIX, outcome_of, status_class

if TYPE_CHECKING:
    from app.engine.claim import Claim
    from app.engine.pipeline import BatchOutcome
    from app.sweeper import SweepReport

log = logging.getLogger(__name__)

#: After the first failure, one in this many is logged (a broken disk must not flood logs).
LOG_EVERY = 1000


class Recorder:
    """The worker-side metrics of one process, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            f"{PREFIX}_deliveries", "Deliveries through the engine, by outcome of the pass "
            "(succeeded, retrying, dead, deferred, superseded), contract and tenant.",
            ["outcome", "contract", "tenant"], registry=self.registry)
        self.attempt_duration = Histogram(
            f"{PREFIX}_attempt_duration_seconds", "Duration of delivery attempts (connect to "
            "the end of the answer), by contract and HTTP status class (error: no status).",
            ["contract", "status_class"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters", "Deliveries dead-lettered by the engine or the sweeper, "
            "by reason.", ["reason"], registry=self.registry)
        self.sweeps = Counter(f"{PREFIX}_sweeper_runs", "Sweeper runs.", registry=self.registry)
        self.recoveries = Counter(
            f"{PREFIX}_sweeper_recoveries", "What the sweeper put right: lost (an in-flight "
            "lease expired), redispatched (sent again), message_lost (of those: its message had left "
            "its queue unclaimed), exhausted (a lost attempt was the last).",
            ["kind"], registry=self.registry)
        self.broker_resets = Counter(
            f"{PREFIX}_sweeper_broker_resets", "Broker resets (flush or restart) the sweeper "
            "noticed.", registry=self.registry)

    def outcomes(self, claims: Sequence[Claim], attempts: Sequence[Mapping[str, Any]],
                 outcome: BatchOutcome) -> None:
        superseded = set(outcome.superseded)
        sets = {
            "succeeded": set(outcome.succeeded), "dead": {d for d, _ in outcome.dead},
            "deferred": set(outcome.deferred), "superseded": superseded,
            "retrying": {r.delivery_id for r in outcome.retries} | set(outcome.parked),
        }
        tally: Tally[tuple[str, str, str]] = Tally()
        contracts: dict[str, str] = {}
        for item in claims:
            contracts[item.delivery_id] = item.endpoint.contract
            label = outcome_of(item.delivery_id, **sets)
            if label is not None:
                tally[(label, item.endpoint.contract, item.endpoint.tenant_id)] += 1
        for labels, count in tally.items():
            self.deliveries.labels(*labels).inc(count)
        for _delivery_id, reason in outcome.dead:
            self.dead_letters.labels(str(reason)).inc()
        for attempt in attempts:
            delivery_id, duration_ms = attempt.get("delivery_id"), attempt.get("duration_ms")
            contract = contracts.get(str(delivery_id))
            if contract is None or duration_ms is None or delivery_id in superseded:
                continue
            self.attempt_duration.labels(contract, status_class(attempt.get("status_code"))
                                         ).observe(max(float(duration_ms), 0.0) / 1000.0)

    def sweep(self, report: SweepReport) -> None:
        self.sweeps.inc()
        self.recoveries.labels("lost").inc(report.lost)
        self.recoveries.labels("exhausted").inc(report.exhausted)
        self.recoveries.labels("redispatched").inc(report.dispatched)
        self.recoveries.labels("message_lost").inc(report.resent)
        if report.broker_reset:
            self.broker_resets.inc()
        for _delivery_id, reason in report.dead:
            self.dead_letters.labels(str(reason)).inc()


_lock = threading.Lock()
_instance: Recorder | None = None
#: Failures so far, per kind of record.
_failures: dict[str, int] = {}


def recorder() -> Recorder:
    """This process's recorder, built on first use (after :func:`enable_multiprocess`)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = Recorder()
        return _instance


def enable_multiprocess(directory: Path) -> None:
    """Write this process's metrics (and its forked children's) to files in *directory*.

    Call it before the first metric is observed: values already counted in memory are
    not carried over.
    """
    global _instance
    directory.mkdir(parents=True, exist_ok=True)
    # prometheus-client opens its files under this variable when a value is first written.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"

    def identity() -> str:
        return f"{host}-{os.getpid()}"

    with _lock:
        values.ValueClass = values.MultiProcessValue(process_identifier=identity)
        _instance = None


def _failed(what: str) -> None:
    count = _failures[what] = _failures.get(what, 0) + 1
    if count == 1 or count % LOG_EVERY == 0:
        log.warning("recording %s metrics failed (%d failure(s) so far)", what, count,
                    exc_info=True)


def observe_outcomes(claims: Sequence[Claim], attempts: Sequence[Mapping[str, Any]],
                     outcome: BatchOutcome) -> None:
    """Count one recorded batch: each claimed delivery's outcome, each attempt's duration."""
    try:
        recorder().outcomes(claims, attempts, outcome)
    except Exception:
        _failed("delivery")


def observe_sweep(report: SweepReport) -> None:
    """Count one sweeper run and what it recovered."""
    try:
        recorder().sweep(report)
    except Exception:
        _failed("sweeper")


__all__ = ["Recorder", "enable_multiprocess", "observe_outcomes", "observe_sweep", "recorder"]
