"""Gauges measured when ``/metrics`` is scraped, from PostgreSQL and the broker.

A custom prometheus-client collector in the API process: the state of the whole fleet
is in SQL, so it is read once per scrape here instead of by every worker. Each source
is read in one short, read-only transaction with a statement timeout on PostgreSQL;
a source that fails is logged and reported as ``hookline_metrics_source_up{source}=0``
while every other series is still served.

The queries use indexes only: waiting deliveries and dead letters by state
(``ix_deliveries_state_due``), attempts of the window by ``ix_attempts_started_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, case, func, or_, select, text

from app.brokers import Broker
from app.models import Attempt, DeadReason, Delivery, DeliveryState, utcnow
from app.names import DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, partition_queue
from app.observability.series import (
    PREFIX,
    WAITING_STATES,
    EndpointStat,
    counts_by_label,
    select_endpoints,
    waiting_by_queue,
)
from config.settings import Settings

log = logging.getLogger(__name__)

#: A scrape's queries give up after this long (PostgreSQL), so a slow database never
#: piles up scrapes.
STATEMENT_TIMEOUT_MS = 5000
#: The error class of the attempt the sweeper writes for a worker lost mid-attempt.
LOST_ATTEMPT = "WorkerLost"


class StateCollector(Collector):
    """The fleet's state: backlog per queue, oldest undelivered, dead letters, endpoints."""

    def __init__(self, settings: Settings, engine: Callable[[], Engine],
                 broker: Callable[[], Broker], *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self._engine = engine
        self._broker = broker
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(f"{PREFIX}_metrics_source_up",
                               "Whether the last scrape could read this source (1) or not (0).",
                               labels=["source"])
        try:
            families = self._from_database()
            up.add_metric(["database"], 1)
        except Exception:
            log.warning("metrics: reading the database failed", exc_info=True)
            families = []
            up.add_metric(["database"], 0)
        yield from families
        try:
            yield self._from_broker()
            up.add_metric(["broker"], 1)
        except Exception:
            log.warning("metrics: reading the broker failed", exc_info=True)
            up.add_metric(["broker"], 0)
        yield up

    # -- PostgreSQL -------------------------------------------------------------------
    def _from_database(self) -> list[GaugeMetricFamily]:
        now = self.clock()
        since = now - timedelta(seconds=self.settings.metrics_window_seconds)
        with self._engine().connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                conn.execute(text("SET TRANSACTION READ ONLY"))
            backlog = conn.execute(
                select(Delivery.endpoint_id, Delivery.state, func.count(),
                       func.min(Delivery.created_at))
                .where(Delivery.state.in_(WAITING_STATES))
                .group_by(Delivery.endpoint_id, Delivery.state)).all()
            dead = conn.execute(
                select(Delivery.dead_reason, func.count())
                .where(Delivery.state == DeliveryState.DEAD)
                .group_by(Delivery.dead_reason)).all()
            endpoints = self._endpoint_stats(conn, since)
        return [*self._backlog(backlog, now), self._dead(dead), *self._endpoints(endpoints)]

    def _backlog(self, rows: Sequence[Any], now: datetime
                 ) -> list[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            f"{PREFIX}_deliveries_waiting", "Deliveries not yet delivered nor dead, per partition "
            "queue and state (pending, retry_scheduled, in_flight).", labels=["queue", "state"])
        for (queue, state), count in sorted(waiting_by_queue(
                ((r[0], str(r[1]), int(r[2])) for r in rows), self.settings.partitions).items()):
            waiting.add_metric([queue, state], count)
        oldest = min((r[3] for r in rows if r[3] is not None), default=None)
        age = GaugeMetricFamily(
            f"{PREFIX}_oldest_undelivered_age_seconds", "Age of the oldest delivery not yet "
            "delivered nor dead (0 when none waits).",
            value=max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
        return [waiting, age]

    @staticmethod
    def _dead(rows: Sequence[Any]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            f"{PREFIX}_dead_letters_stored", "Dead letters in the database now, by reason "
            "(requeueing lowers it).", labels=["reason"])
        for reason, count in sorted(counts_by_label(rows, [r.value for r in DeadReason]).items()):
            family.add_metric([reason], count)
        return family

    @staticmethod
    def _endpoint_stats(conn: Connection, since: datetime) -> list[EndpointStat]:
        ok = func.sum(case((Attempt.status_code.between(200, 299), 1), else_=0))
        rows = conn.execute(
            select(Delivery.endpoint_id, Delivery.tenant_id, func.count(), ok)
            .join(Delivery, Delivery.id == Attempt.delivery_id)
            .where(Attempt.started_at >= since,
                   # A worker that died mid-attempt says nothing about the endpoint.
                   or_(Attempt.error_class.is_(None), Attempt.error_class != LOST_ATTEMPT))
            .group_by(Delivery.endpoint_id, Delivery.tenant_id)).all()
        return [EndpointStat(r[0], r[1], int(r[2]), int(r[3] or 0)) for r in rows]

    def _endpoints(self, stats: list[EndpointStat]) -> list[GaugeMetricFamily]:
        window = f"{self.settings.metrics_window_seconds:g}"
        chosen, dropped = select_endpoints(stats, self.settings.metrics_max_endpoints)
        ratio = GaugeMetricFamily(
            f"{PREFIX}_endpoint_success_ratio", f"Share of an endpoint's attempts in the last "
            f"{window} s answered 2xx; at most HOOKLINE_METRICS_MAX_ENDPOINTS endpoints, worst first.",
            labels=["endpoint", "tenant"])
        attempts = GaugeMetricFamily(
            f"{PREFIX}_endpoint_attempts", f"An endpoint's attempts in the last {window} s (the "
            "endpoints of hookline_endpoint_success_ratio).", labels=["endpoint", "tenant"])
        for stat in chosen:
            ratio.add_metric([stat.endpoint_id, stat.tenant_id], stat.ratio)
            attempts.add_metric([stat.endpoint_id, stat.tenant_id], stat.attempts)
        omitted = GaugeMetricFamily(
            f"{PREFIX}_endpoint_series_omitted", "Endpoints with attempts in the window left out "
            "of the per-endpoint series by HOOKLINE_METRICS_MAX_ENDPOINTS.", value=dropped)
        return [ratio, attempts, omitted]

    # -- the broker (Redis or RabbitMQ) -------------------------------------------------
    def _from_broker(self) -> GaugeMetricFamily:
        queues = [partition_queue(p) for p in range(self.settings.partitions)]
        queues += [MAINTENANCE_QUEUE, DEAD_LETTER_QUEUE]
        found = self._broker().queue_lengths(queues)
        lengths = [found[queue] for queue in queues]
        family = GaugeMetricFamily(
            f"{PREFIX}_broker_queue_messages", "Messages waiting on each broker queue (one "
            "message carries up to HOOKLINE_TASK_BATCH delivery ids; countdowns held by "
            "workers are not counted).", labels=["queue"])
        for queue, length in zip(queues, lengths, strict=True):
            family.add_metric([queue], int(length))
        return family


__all__ = ["StateCollector"]
