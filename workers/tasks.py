"""The tasks: a few lines each, calling into :mod:`app`.

* ``hookline.deliver(ids)`` — one batch through the engine (:mod:`app.engine`), then its
  follow-ups: countdown retries, dead-letter notices and the messages of the operational
  events its record wrote (:mod:`app.announce`; a failure there is logged, never the
  task's). If the database cannot be
  reached, the task is retried (its message is not simply acknowledged). The task's result counts what
  the batch did, so Flower shows deliveries, not only messages, per task.
* ``hookline.dead_letter(id, reason)`` — the dead-letter queue's consumer: logs it.
* ``hookline.sweep()`` — the sweeper, sent by beat.
* ``hookline.replay(id)`` — runs or resumes a replay (:mod:`app.replays`); a worker
  killed mid-replay gives the message back and the next one resumes at its cursor.
* ``hookline.prune()`` — retention (:mod:`app.pruning`), sent by beat.

The tasks get what they call from a :class:`WorkerServices` (in practice the process's
:class:`app.client.Hookline`), handed in by :mod:`workers.main`; nothing here imports
the client, so the client can import the Celery app without a cycle.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from celery import Celery, Task
from celery.backends.base import DisabledBackend
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import announce
from app.db import unreachable
from app.dispatch import Dispatcher
from app.engine import DeliveryEngine, send_follow_ups
from app.names import DEAD_LETTER_TASK, DELIVER_TASK, PRUNE_TASK, REPLAY_TASK, SWEEP_TASK
from app.pruning import prune
from app.replays import run_replay
from app.sweeper import Sweeper
from config.settings import Settings

log = logging.getLogger("hookline.worker")

#: A batch whose database was unreachable is retried this many times (about ten minutes).
DATABASE_RETRIES = 120


def database_backoff(retries: int) -> float:
    """Seconds before a batch whose database was unreachable runs again: 0.5, 1, 2, 4, 5…"""
    return float(min(0.5 * 2 ** retries, 5.0))


class WorkerServices(Protocol):
    settings: Settings

    @property
    def engine(self) -> Engine: ...
    @property
    def sessions(self) -> sessionmaker[Session]: ...
    @property
    def deliveries(self) -> DeliveryEngine: ...
    @property
    def dispatcher(self) -> Dispatcher: ...
    @property
    def sweeper(self) -> Sweeper: ...
    def after_fork(self) -> None: ...
    def close(self) -> None: ...


def register_tasks(app: Celery, services: WorkerServices) -> None:
    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        services.after_fork()

    @worker_process_shutdown.connect(weak=False)
    @worker_shutdown.connect(weak=False)
    def _on_shutdown(**_: Any) -> None:
        services.close()

    # Results are never stored. Naming the disabled backend here spares every pool
    # thread's first task a lookup of the backend by URL (an entry-point scan costing
    # tens of milliseconds): ~20 % of a worker's first seconds in the benchmark's profile.
    no_results = DisabledBackend(app)

    @app.task(name=DELIVER_TASK, bind=True, max_retries=DATABASE_RETRIES, backend=no_results)
    def deliver(self: Task, delivery_ids: list[str]) -> dict[str, int]:
        engine = services.deliveries
        try:
            outcome = engine.run(delivery_ids)
        except Exception as exc:
            if not unreachable(exc):
                raise
            # Not acknowledged as done: the same ids come back once the database does.
            # (Past the retries, or if this message is lost too, the sweeper sends them.)
            log.warning("the database is unreachable; delivery batch retried: %s", exc)
            raise self.retry(exc=exc, countdown=database_backoff(self.request.retries)) from exc
        parked = send_follow_ups(services.dispatcher, [*outcome.retries, *outcome.released],
                                 outcome.dead, engine.park)
        parked += announce.send(services.dispatcher, outcome.announced, engine.park)
        counts = outcome.counts()
        counts["parked"] += parked
        counts["deliveries"] = len(delivery_ids)
        return counts

    @app.task(name=DEAD_LETTER_TASK, backend=no_results)
    def dead_letter(delivery_id: str, reason: str) -> None:
        log.warning("dead letter %s (%s); `hookline dlq list` shows it", delivery_id, reason)

    @app.task(name=SWEEP_TASK, backend=no_results)
    def sweep() -> dict[str, int]:
        report = services.sweeper.run()
        for delivery_id, reason in report.dead:
            services.dispatcher.dead_letter(delivery_id, reason)
        if report.lost or report.dispatched or report.broker_reset:
            log.warning("sweep: %d lost attempts recovered, %d deliveries sent (%d of them "
                        "had lost their message), broker reset=%s", report.lost,
                        report.dispatched, report.resent, report.broker_reset)
        return {"lost": report.lost, "dispatched": report.dispatched, "resent": report.resent,
                "broker_reset": int(report.broker_reset)}

    @app.task(name=REPLAY_TASK, backend=no_results)
    def replay(replay_id: str) -> dict[str, int]:
        view = run_replay(services.sessions, services.dispatcher, replay_id,
                          batch=services.settings.replay_batch)
        counts = view.counts
        return {"matched": counts.matched, "sent": counts.sent, "pruned": counts.pruned,
                "skipped_disabled": counts.skipped_disabled,
                "skipped_active": counts.skipped_active}

    @app.task(name=PRUNE_TASK, backend=no_results)
    def prune_old() -> dict[str, int]:
        settings = services.settings
        report = prune(services.engine, default_days=settings.retention_days,
                       batch=settings.prune_batch)
        if report.attempts or report.events:
            log.warning("prune: %d attempts deleted, %d event payloads pruned",
                        report.attempts, report.events)
        return {"attempts": report.attempts, "events": report.events}
