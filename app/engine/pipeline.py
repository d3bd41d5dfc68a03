"""One batch through the steps: claim → render → send → judge → record (→ schedule).

:class:`DeliveryEngine` is the work behind the ``hookline.deliver`` task, kept out of
Celery so it runs and tests the same anywhere. A batch costs two transactions (claim,
record) whatever its size; its requests are sent concurrently (:mod:`app.engine.send`).
Every step is guarded per delivery: an error while rendering, sending or judging one
delivery becomes that delivery's attempt, with its error class, and the rest of the
batch is sent and recorded as usual. :meth:`DeliveryEngine.run` returns the follow-ups
for the caller to send after the commit (:mod:`app.engine.schedule`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from app.catalogue import Catalogue, default_catalogue
from app.classification import TransportError
from app.db import unreachable
from app.engine.capacity import Capacity, Permits
from app.engine.circuit import (
    Circuit,
    CircuitPolicy,
    CircuitState,
    is_failure,
    observe,
    start_probe,
)
from app.engine.claim import Claim, claim
from app.engine.grouping import Group
from app.engine.judge import Decision, Outcome, deferred, describe, judge
from app.engine.lease import Leases
from app.engine.limiter import Held, RateLimits, buckets_for
from app.engine.ordering import release_next
from app.engine.record import Ledger, merge, park, record, split, stripped
from app.engine.render import render
from app.engine.schedule import ScheduledRetry
from app.engine.send import Deferred, OutgoingRequest, SendResult, ThreadedSender
from app.models import DeadReason, DeliveryState, utcnow
from app.observability import recorder as metrics
from app.retry_policy import RetryPolicy
from app.transport import HttpResult, Transport, failure
from config.settings import Settings

log = logging.getLogger(__name__)

#: How long a delivery whose endpoint was busy waits before it is due again.
BUSY_DEFER_SECONDS = 1.0


class BatchSender(Protocol):
    def send_many(self, requests: Sequence[OutgoingRequest],
                  skip: Callable[[OutgoingRequest], bool] | None = None,
                  seen: Callable[[OutgoingRequest, HttpResult], None] | None = None,
                  ) -> list[SendResult]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did, and what the caller must send after the commit."""

    succeeded: list[str] = field(default_factory=list)
    retries: list[ScheduledRetry] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    #: Claimed here but taken over by another worker before the record: outcome dropped.
    superseded: list[str] = field(default_factory=list)
    #: Operational events' deliveries the record wrote (app/announce.py), to send now.
    announced: list[tuple[str, str]] = field(default_factory=list)
    #: The next delivery of each ordering key whose delivery finished here (app/engine/ordering.py).
    released: list[ScheduledRetry] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"succeeded": len(self.succeeded), "retrying": len(self.retries),
                "parked": len(self.parked), "dead": len(self.dead),
                "deferred": len(self.deferred), "skipped": len(self.skipped)}


def retry_policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.retry_base_seconds,
        multiplier=settings.retry_multiplier,
        max_delay_seconds=settings.retry_max_delay_seconds,
        jitter=settings.retry_jitter,
        retry_after_max_seconds=settings.retry_after_max_seconds,
    )


def circuit_policy_from(settings: Settings) -> CircuitPolicy:
    return CircuitPolicy(failure_threshold=settings.circuit_failure_threshold,
                         cooloff_seconds=settings.circuit_cooloff_seconds,
                         max_cooloff_seconds=settings.circuit_max_cooloff_seconds)


def as_batch_sender(transport: Transport | BatchSender) -> BatchSender:
    if hasattr(transport, "send_many"):
        return transport  # type: ignore[return-value]
    return ThreadedSender(transport)


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        transport: Transport | BatchSender,
        *,
        policy: RetryPolicy | None = None,
        circuit: CircuitPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        unix_time: Callable[[], float] = time.time,
        uniform: Callable[[float, float], float] = random.uniform,
        catalogue: Catalogue | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue or default_catalogue(settings.extra_event_types)
        self.engine = engine
        self.sender = as_batch_sender(transport)
        self.policy = policy or retry_policy_from(settings)
        self.circuit_policy = circuit or circuit_policy_from(settings)
        self.clock = clock
        self.unix_time = unix_time
        self.uniform = uniform
        self.capacity = Capacity(settings.worker_max_in_flight)
        self.rate_limits = rate_limits or RateLimits(
            lambda: buckets_for(settings.resolved_broker_url, settings.broker_key_prefix),
            settings.slot_wait, uniform)
        self.leases = Leases(engine, settings.lease_seconds, clock)
        self._claim_group: Group[tuple[str, ...], tuple[list[Claim], list[str]]] = Group(
            self._claim_many)
        self._record_group: Group[Ledger, set[str]] = Group(self._record_many)

    def lease_seconds(self) -> float:
        """A claimed delivery's lease, renewed by :class:`~app.engine.lease.Leases` while
        this process holds it, so it need not cover the attempt's deadlines."""
        return self.settings.lease_seconds

    # -- the whole batch -------------------------------------------------------------------
    def run(self, delivery_ids: Sequence[str]) -> BatchOutcome:
        permits = Permits(self.capacity, len(delivery_ids))
        try:
            return self._run(delivery_ids, permits)
        finally:
            permits.give_all()

    def _run(self, delivery_ids: Sequence[str], permits: Permits) -> BatchOutcome:
        outcome = BatchOutcome()
        claims, outcome.skipped = self._claim_group(tuple(delivery_ids))
        permits.give(len(outcome.skipped))
        if not claims:
            return outcome
        held = [c.delivery_id for c in claims]
        self.leases.hold(held)
        try:
            self._work(claims, outcome, permits)
        finally:
            self.leases.release(held)
        return outcome

    def _work(self, claims: list[Claim], outcome: BatchOutcome, permits: Permits) -> None:
        """Render, send, judge and record the claimed deliveries."""
        ledger = Ledger()
        decisions: dict[str, Decision] = {}
        to_send: list[tuple[Claim, OutgoingRequest]] = []
        started = self.clock()
        timestamp = int(self.unix_time())
        early_decisions = {c.delivery_id: d for c in claims
                           if (d := self._before_sending(c, started)) is not None}
        held = self.rate_limits.hold_back(
            [c for c in claims if c.delivery_id not in early_decisions])
        for item in claims:
            early = (early_decisions.get(item.delivery_id)
                     or self._rate_limited(item, held, started))
            if early is not None:
                decisions[item.delivery_id] = early
                continue
            timeout = self.settings.endpoint_timeout(item.endpoint.timeout_seconds)
            request = render(item, self.catalogue, now=started, timestamp=timestamp,
                             timeout=timeout)
            if isinstance(request, Exception):
                result = failure(TransportError.INVALID_REQUEST, request, 0.0)
                decisions[item.delivery_id] = self._judge(item, result, started, ledger)
                continue
            if item.delivery_id in held.waits:
                request = replace(request, delay=held.waits[item.delivery_id])
            to_send.append((item, request))
        permits.give(len(claims) - len(to_send))
        disabled: set[str] = set()
        results = self._send([r for _, r in to_send], disabled, permits)
        finished = self.clock()
        self.rate_limits.observe(held, [(item.endpoint.id, sent) for (item, _), sent
                                        in zip(to_send, results, strict=True)
                                        if not isinstance(sent, Deferred)], finished)
        for delivery_id, wait in held.deferred.items():  # counted down from now, not the acquire
            decisions[delivery_id] = deferred(started + timedelta(seconds=wait), finished,
                                              held.reasons[delivery_id])
        probes: dict[str, Circuit] = {}
        for (item, _request), sent in zip(to_send, results, strict=True):
            if isinstance(sent, Deferred):
                if item.endpoint.id in disabled:
                    decisions[item.delivery_id] = Decision(
                        Outcome.DEAD, dead_reason=DeadReason.ENDPOINT_DISABLED,
                        error="endpoint is disabled")
                else:
                    until = finished + timedelta(
                        seconds=BUSY_DEFER_SECONDS * self.uniform(1.0, 1.5))
                    decisions[item.delivery_id] = deferred(until, finished, sent.reason)
                continue
            result = sent
            decision = self._judge(item, result, started, ledger)
            decisions[item.delivery_id] = decision
            if decision.disable_endpoint:
                ledger.disable[item.endpoint.id] = f"disabled after HTTP {result.status}"
            failed = is_failure(result.status, result.error)
            if item.probe:
                # This batch owns the half-open circuit: its answer decides the state.
                probes[item.endpoint.id] = observe(
                    start_probe(item.endpoint.circuit, finished, 0.0), failed, finished,
                    self.circuit_policy)
            else:
                ledger.observations.setdefault(item.endpoint.id, []).append(failed)
        ledger.circuits.update(probes)
        for endpoint_id in probes:
            ledger.observations.pop(endpoint_id, None)
        for item in claims:  # nothing to count: all answered, and the count was clean
            seen = ledger.observations.get(item.endpoint.id)
            circuit = item.endpoint.circuit
            if (seen is not None and not any(seen) and circuit.failures == 0
                    and circuit.state is CircuitState.CLOSED):
                del ledger.observations[item.endpoint.id]
        for item in claims:
            self._book(item, decisions[item.delivery_id], finished, ledger, outcome)
        written = self._record_group(ledger)
        self._drop_superseded(outcome, written)
        outcome.announced = ledger.announced
        done = {*outcome.succeeded, *(i for i, _ in outcome.dead)}
        outcome.released = release_next(
            self.engine, [(c.endpoint.id, c.ordering_key) for c in claims
                          if c.ordering_key is not None and c.delivery_id in done],
            now=self.clock(), countdown_max=self.settings.broker_countdown_max)
        metrics.observe_outcomes(claims, ledger.attempts, outcome)

    # -- the database steps, grouped across the tasks running at once ----------------------
    def _claim_many(self, batches: Sequence[tuple[str, ...]]
                    ) -> list[tuple[list[Claim], list[str]]]:
        """One claim transaction for every waiting task's ids; each gets its own claims."""
        wanted = list(dict.fromkeys(i for ids in batches for i in ids))
        now = self.clock()
        with self.engine.begin() as conn:
            claims, _skipped = claim(
                conn, wanted, now=now, lease_seconds=self.lease_seconds(),
                probe_seconds=self.settings.connect_timeout + self.settings.read_timeout
                + self.settings.lease_seconds)
        by_id = {c.delivery_id: c for c in claims}
        shares: list[tuple[list[Claim], list[str]]] = []
        for ids in batches:
            mine = [by_id.pop(i) for i in ids if i in by_id]
            taken = {c.delivery_id for c in mine}
            shares.append((mine, [i for i in ids if i not in taken]))
        return shares

    def _record_many(self, ledgers: Sequence[Ledger]) -> list[set[str]]:
        """One record transaction for every waiting task's ledger."""
        merged = merge(ledgers)
        written = self._record(merged, self.clock())
        # Operational deliveries are sent once: by the task whose ledger comes first.
        ledgers[0].announced = merged.announced
        return [written] * len(ledgers)

    def _record(self, ledger: Ledger, now: datetime) -> set[str]:
        """The batch's record, tried again while the database is unreachable.

        The attempts were made: giving up the record means sending them again later.
        So a worker waits up to ``HOOKLINE_RECORD_PATIENCE`` for the database to come
        back (a restart), then gives the batch to the sweeper by raising.
        """
        deadline = time.monotonic() + self.settings.record_patience
        pause = 0.2
        while True:
            try:
                return self._record_now(ledger, now)
            except Exception as exc:
                if not unreachable(exc) or time.monotonic() + pause > deadline:
                    raise
                log.warning("the database is unreachable; recording %d outcome(s) again "
                            "in %.1f s: %s", len(ledger.updates), pause, exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _record_now(self, ledger: Ledger, now: datetime) -> set[str]:
        """The batch's record in one transaction; if the database refuses it, one delivery
        at a time, so one unstorable result costs only its own delivery's details."""
        try:
            with self.engine.begin() as conn:
                return record(conn, ledger, now=now, circuit=self.circuit_policy)
        except StatementError as exc:
            if isinstance(exc, OperationalError | InterfaceError):
                raise  # the database is away, not refusing this data
            log.warning("recording a batch was refused (%s); recording one by one", exc)
        written: set[str] = set()
        for part in split(ledger):
            for attempt in (part, stripped(part)):
                try:
                    with self.engine.begin() as conn:
                        written |= record(conn, attempt, now=now, circuit=self.circuit_policy)
                    break
                except StatementError as exc:
                    if isinstance(exc, OperationalError | InterfaceError):
                        raise
                    log.exception("recording deliveries %s was refused",
                                  [u["b_id"] for u in attempt.updates])
        return written

    # -- steps -------------------------------------------------------------------------------
    def _before_sending(self, item: Claim, now: datetime) -> Decision | None:
        """A decision that needs no request: endpoint gone or off, budget spent, circuit open."""
        endpoint = item.endpoint
        if endpoint.deleted_at is not None:
            return Decision(Outcome.DEAD, dead_reason=DeadReason.ENDPOINT_DELETED,
                            error="endpoint deleted")
        if not endpoint.enabled:
            return Decision(Outcome.DEAD, dead_reason=DeadReason.ENDPOINT_DISABLED,
                            error="endpoint is disabled")
        if item.attempt_number > (endpoint.max_attempts or self.settings.max_attempts):
            # Claimed again after lost workers used up the budget: a poison message.
            return Decision(Outcome.DEAD, dead_reason=DeadReason.EXHAUSTED,
                            error="attempt budget used up by interrupted attempts")
        if item.deferred_until is not None:
            return deferred(item.deferred_until, now, "circuit open")
        return None

    @staticmethod
    def _rate_limited(item: Claim, held: Held, now: datetime) -> Decision | None:
        """Deferred until its endpoint's token is due (no attempt), if the limiter said so."""
        wait = held.deferred.get(item.delivery_id)
        if wait is None:
            return None
        return deferred(now + timedelta(seconds=wait), now, held.reasons[item.delivery_id])

    def _send(self, requests: list[OutgoingRequest], disabled: set[str],
              permits: Permits) -> list[SendResult]:
        def skip(request: OutgoingRequest) -> bool:
            return request.key in disabled

        def seen(request: OutgoingRequest, result: HttpResult) -> None:
            permits.give()
            if result.status == 410:
                disabled.add(request.key)

        try:
            return self.sender.send_many(requests, skip, seen)
        except Exception as exc:  # the sender itself failed: every request's attempt failed
            log.exception("sending a batch failed")
            return [failure(TransportError.PROTOCOL, exc, 0.0) for _ in requests]

    def _judge(self, item: Claim, result: HttpResult, started: datetime,
               ledger: Ledger) -> Decision:
        """Record the attempt and decide; a failure to judge is retried like any failure."""
        ledger.attempt(delivery_id=item.delivery_id, attempt_number=item.attempt_number,
                       started_at=started, duration_ms=result.duration_ms,
                       status_code=result.status, error_class=result.error_class,
                       error_message=describe(result),
                       response_excerpt=result.body_excerpt)
        max_attempts = item.endpoint.max_attempts or self.settings.max_attempts
        try:
            return judge(result, attempt_number=item.attempt_number, max_attempts=max_attempts,
                         now=self.clock(), policy=self.policy, uniform=self.uniform)
        except Exception as exc:
            log.exception("judging delivery %s failed", item.delivery_id)
            fallback = failure(TransportError.PROTOCOL, exc, 0.0)
            return judge(fallback, attempt_number=item.attempt_number,
                         max_attempts=max_attempts, now=self.clock(), policy=self.policy,
                         uniform=lambda a, b: a)

    def _book(self, item: Claim, decision: Decision, now: datetime, ledger: Ledger,
              outcome: BatchOutcome) -> None:
        """The delivery row's update for *decision*, and the follow-up it needs."""
        status = decision.status
        did, claimed = item.delivery_id, item.attempt_number
        if decision.outcome is Outcome.SUCCEEDED:
            ledger.update(did, claimed, now, DeliveryState.SUCCEEDED, status=status,
                          succeeded_at=now)
            outcome.succeeded.append(did)
        elif decision.outcome is Outcome.DEAD:
            reason = decision.dead_reason or DeadReason.PERMANENT_ERROR
            ledger.update(did, claimed, now, DeliveryState.DEAD, status=status,
                          error=decision.error, dead_reason=reason)
            outcome.dead.append((did, reason))
        else:
            give_back = decision.outcome is Outcome.DEFERRED
            state = (DeliveryState.PENDING if give_back and claimed <= 1
                     else DeliveryState.RETRY_SCHEDULED)
            in_broker = decision.delay <= self.settings.broker_countdown_max
            ledger.update(did, claimed, now, state, status=None if give_back else status,
                          error=decision.error, next_attempt_at=decision.next_attempt_at,
                          queued_at=now if in_broker else None, give_back_attempt=give_back)
            if give_back:
                outcome.deferred.append(did)
            if in_broker:
                outcome.retries.append(ScheduledRetry(did, item.endpoint.id, decision.delay))
            else:
                outcome.parked.append(did)

    @staticmethod
    def _drop_superseded(outcome: BatchOutcome, written: set[str]) -> None:
        """Follow-ups only for the rows this batch still owned when it recorded."""
        gone = [i for i in outcome.succeeded if i not in written]
        gone += [r.delivery_id for r in outcome.retries if r.delivery_id not in written]
        gone += [i for i in outcome.parked if i not in written]
        gone += [i for i, _ in outcome.dead if i not in written]
        if not gone:
            return
        outcome.superseded = gone
        outcome.succeeded = [i for i in outcome.succeeded if i in written]
        outcome.retries = [r for r in outcome.retries if r.delivery_id in written]
        outcome.parked = [i for i in outcome.parked if i in written]
        outcome.dead = [(i, r) for i, r in outcome.dead if i in written]
        outcome.deferred = [i for i in outcome.deferred if i in written]

    def park(self, delivery_ids: Sequence[str]) -> None:
        """Forget that a message was sent for these deliveries: the sweeper will send one."""
        if delivery_ids:
            with self.engine.begin() as conn:
                park(conn, delivery_ids)

    def close(self) -> None:
        self.leases.close()
        self.sender.close()


__all__ = ["BatchOutcome", "DeliveryEngine", "retry_policy_from"]
