"""The delivery step: claim due deliveries, send each signed attempt, record the outcome.

This is the work behind the ``hookline.deliver`` task, kept out of Celery so it runs
and tests the same anywhere. One call handles a batch of delivery ids with a fixed
number of database round trips (read, claim, record), whatever the batch size, and
returns the follow-ups (retries to schedule, dead letters to announce) for the
caller to publish after the commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue, default_catalogue
from app.classification import TransportError, Verdict, classify
from app.db import transaction
from app.models import (
    CLAIMABLE_STATES,
    Attempt,
    DeadReason,
    Delivery,
    DeliveryState,
    Endpoint,
    Event,
    utcnow,
)
from app.rendering import render_attempt
from app.retry_policy import RetryPolicy, parse_retry_after
from app.transport import HttpResult, Transport
from config.settings import Settings

log = logging.getLogger(__name__)

#: A message may arrive this much before its delivery's due time and still be taken.
CLOCK_SKEW = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ScheduledRetry:
    delivery_id: str
    endpoint_id: str
    countdown: float


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did, and what the caller must publish after the commit."""

    succeeded: list[str] = field(default_factory=list)
    retries: list[ScheduledRetry] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Claimed:
    delivery_id: str
    attempt_number: int
    endpoint: Endpoint
    event: Event


def retry_policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.retry_base_seconds,
        multiplier=settings.retry_multiplier,
        max_delay_seconds=settings.retry_max_delay_seconds,
        jitter=settings.retry_jitter,
        retry_after_max_seconds=settings.retry_after_max_seconds,
    )


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        transport: Transport,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        unix_time: Callable[[], float] = time.time,
        uniform: Callable[[float, float], float] = random.uniform,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue or default_catalogue(settings.extra_event_types)
        self.sessions = sessions
        self.transport = transport
        self.policy = policy or retry_policy_from(settings)
        self.clock = clock
        self.unix_time = unix_time
        self.uniform = uniform

    # -- claim ---------------------------------------------------------------------------
    def _claim(self, delivery_ids: Sequence[str], outcome: BatchOutcome) -> list[_Claimed]:
        now = self.clock()
        with transaction(self.sessions) as session:
            rows = session.execute(
                select(Delivery.id, Delivery.state, Delivery.next_attempt_at,
                       Delivery.attempt_count, Endpoint, Event)
                .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .join(Event, Event.id == Delivery.event_id)
                .where(Delivery.id.in_(list(delivery_ids)))
            ).all()
            due = {
                row[0]: row for row in rows
                if row[1] in CLAIMABLE_STATES and row[2] <= now + CLOCK_SKEW
            }
            outcome.skipped.extend(i for i in delivery_ids if i not in due)
            if not due:
                return []
            budget = sum(
                self.settings.connect_timeout
                + (row[4].timeout_seconds or self.settings.read_timeout)
                for row in due.values()
            )
            lease = now + timedelta(seconds=budget + self.settings.lease_margin)
            claimed_ids = set(session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(list(due)),
                       Delivery.state.in_(CLAIMABLE_STATES),
                       Delivery.next_attempt_at <= now + CLOCK_SKEW)
                .values(state=DeliveryState.IN_FLIGHT, attempt_count=Delivery.attempt_count + 1,
                        lease_expires_at=lease, updated_at=now)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            ))
        outcome.skipped.extend(i for i in due if i not in claimed_ids)
        return [
            _Claimed(delivery_id=i, attempt_number=due[i][3] + 1, endpoint=due[i][4],
                     event=due[i][5])
            for i in delivery_ids if i in claimed_ids
        ]

    # -- send ----------------------------------------------------------------------------
    def _send(self, claim: _Claimed) -> HttpResult:
        endpoint, event = claim.endpoint, claim.event
        rendered = render_attempt(endpoint, event, claim.delivery_id, self.catalogue,
                                  now=self.clock(), timestamp=int(self.unix_time()))
        return self.transport.send(
            endpoint.url, rendered.body, rendered.headers,
            self.settings.endpoint_timeout(endpoint.timeout_seconds),
        )

    # -- the whole step ------------------------------------------------------------------
    def run(self, delivery_ids: Sequence[str]) -> BatchOutcome:
        outcome = BatchOutcome()
        claims = self._claim(delivery_ids, outcome)
        if not claims:
            return outcome
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        disable: dict[str, str] = {}
        for claim in claims:
            started = self.clock()
            max_attempts = claim.endpoint.max_attempts or self.settings.max_attempts
            if claim.endpoint.deleted_at is not None:
                updates.append(_dead(claim.delivery_id, started, DeadReason.ENDPOINT_DELETED,
                                     None, "endpoint deleted"))
                outcome.dead.append((claim.delivery_id, DeadReason.ENDPOINT_DELETED))
                continue
            if not claim.endpoint.enabled or claim.endpoint.id in disable:
                updates.append(_dead(claim.delivery_id, started, DeadReason.ENDPOINT_DISABLED,
                                     None, "endpoint is disabled"))
                outcome.dead.append((claim.delivery_id, DeadReason.ENDPOINT_DISABLED))
                continue
            if claim.attempt_number > max_attempts:
                # Claimed again after a lost worker used up the budget: a poison message.
                updates.append(_dead(claim.delivery_id, started, DeadReason.EXHAUSTED, None,
                                     "attempt budget used up by interrupted attempts"))
                outcome.dead.append((claim.delivery_id, DeadReason.EXHAUSTED))
                continue
            result = self._send(claim)
            verdict = classify(result.status, result.error)
            error = _describe(result)
            attempts.append({
                "delivery_id": claim.delivery_id, "attempt_number": claim.attempt_number,
                "started_at": started, "duration_ms": round(result.duration_ms, 3),
                "status_code": result.status, "error_class": result.error_class,
                "error_message": error, "response_excerpt": result.body_excerpt or None,
            })
            finished = self.clock()
            if verdict is Verdict.SUCCEEDED:
                updates.append(_row(claim.delivery_id, finished, DeliveryState.SUCCEEDED,
                                    status=result.status, succeeded_at=finished))
                outcome.succeeded.append(claim.delivery_id)
            elif verdict in (Verdict.PERMANENT, Verdict.PERMANENT_DISABLE):
                reason = (DeadReason.PERMANENT_4XX if result.status is not None
                          else DeadReason.BLOCKED_DESTINATION
                          if result.error is TransportError.BLOCKED
                          else DeadReason.PERMANENT_ERROR)
                updates.append(_dead(claim.delivery_id, finished, reason, result.status, error))
                outcome.dead.append((claim.delivery_id, reason))
                if verdict is Verdict.PERMANENT_DISABLE:
                    disable[claim.endpoint.id] = f"disabled after HTTP {result.status}"
            elif claim.attempt_number >= max_attempts:
                updates.append(_dead(claim.delivery_id, finished, DeadReason.EXHAUSTED,
                                     result.status, error))
                outcome.dead.append((claim.delivery_id, DeadReason.EXHAUSTED))
            else:
                retry_after = parse_retry_after(_get(result.headers, "Retry-After"), now=finished)
                delay = self.policy.delay(claim.attempt_number, retry_after=retry_after,
                                          uniform=self.uniform)
                in_broker = delay <= self.settings.broker_countdown_max
                updates.append(_row(
                    claim.delivery_id, finished, DeliveryState.RETRY_SCHEDULED,
                    status=result.status, error=error,
                    next_attempt_at=finished + timedelta(seconds=delay),
                    queued_at=finished if in_broker else None,
                ))
                if in_broker:
                    outcome.retries.append(ScheduledRetry(claim.delivery_id, claim.endpoint.id, delay))
                else:
                    outcome.parked.append(claim.delivery_id)
        self._record(attempts, updates, disable)
        return outcome

    def _record(self, attempts: list[dict[str, Any]], updates: list[dict[str, Any]],
                disable: dict[str, str]) -> None:
        table = Delivery.__table__
        assert isinstance(table, Table)
        with transaction(self.sessions) as session:
            if attempts:
                session.execute(insert(Attempt), attempts)
            if updates:
                session.connection().execute(
                    update(table)
                    .where(and_(table.c.id == bindparam("b_id"),
                                table.c.state == DeliveryState.IN_FLIGHT))
                    .values({key: bindparam(key) for key in _UPDATE_KEYS}),
                    updates,
                )
            for endpoint_id, reason in disable.items():
                session.execute(update(Endpoint).where(Endpoint.id == endpoint_id)
                                .values(enabled=False, disabled_reason=reason,
                                        updated_at=self.clock()))

    def park(self, delivery_ids: Sequence[str]) -> None:
        """Forget that a message was sent for these deliveries: the sweeper will send one."""
        if not delivery_ids:
            return
        with transaction(self.sessions) as session:
            session.execute(update(Delivery).where(Delivery.id.in_(list(delivery_ids)))
                            .values(queued_at=None).execution_options(synchronize_session=False))


_UPDATE_KEYS = ("state", "updated_at", "last_status_code", "last_error", "next_attempt_at",
                "queued_at", "lease_expires_at", "dead_reason", "dead_at", "succeeded_at")


def _row(delivery_id: str, now: datetime, state: DeliveryState, *, status: int | None = None,
         error: str | None = None, next_attempt_at: datetime | None = None,
         queued_at: datetime | None = None, dead_reason: str | None = None,
         succeeded_at: datetime | None = None) -> dict[str, Any]:
    return {
        "b_id": delivery_id, "state": state, "updated_at": now, "last_status_code": status,
        "last_error": error, "next_attempt_at": next_attempt_at or now, "queued_at": queued_at,
        "lease_expires_at": None, "dead_reason": dead_reason,
        "dead_at": now if state is DeliveryState.DEAD else None, "succeeded_at": succeeded_at,
    }


def _dead(delivery_id: str, now: datetime, reason: DeadReason, status: int | None,
          error: str | None) -> dict[str, Any]:
    return _row(delivery_id, now, DeliveryState.DEAD, status=status, error=error,
                dead_reason=reason)


def _describe(result: HttpResult) -> str | None:
    if result.status is None:
        return f"{result.error_class}: {result.error_message}"
    if 200 <= result.status < 300:
        return None
    return f"HTTP {result.status}"


def _get(headers: Any, name: str) -> str | None:
    lowered = name.lower()
    for key, value in dict(headers).items():
        if key.lower() == lowered:
            return str(value)
    return None
