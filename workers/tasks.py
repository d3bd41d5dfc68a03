"""The tasks: a few lines each, calling into :mod:`app`.

* ``hookline.deliver(ids)`` — run a batch of deliveries; schedule retries by countdown.
* ``hookline.dead_letter(id, reason)`` — the dead-letter queue's consumer: logs it.
* ``hookline.sweep()`` — the sweeper, sent by beat.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject
from celery.signals import worker_process_init

from app.client import Hookline
from app.names import DEAD_LETTER_TASK, DELIVER_TASK, SWEEP_TASK
from app.partitioning import queue_for
from config.settings import Settings

log = logging.getLogger("hookline.worker")


def register_tasks(app: Celery, settings: Settings) -> None:
    hookline = Hookline(settings, sender=app)
    app.hookline = hookline

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        hookline.after_fork()

    @app.task(name=DELIVER_TASK, bind=True, max_retries=None)
    def deliver(self: Task, delivery_ids: list[str]) -> dict[str, int]:
        outcome = hookline.deliveries.run(delivery_ids)
        for delivery_id, reason in outcome.dead:
            hookline.dispatcher.dead_letter(delivery_id, reason)
        retries = outcome.retries
        if len(delivery_ids) == 1 and len(retries) == 1:
            retry = retries[0]
            try:
                raise self.retry(args=(delivery_ids,), countdown=retry.countdown,
                                 queue=queue_for(retry.endpoint_id, settings.partitions))
            except Reject:
                hookline.deliveries.park([retry.delivery_id])  # the sweeper sends it later
                raise
        unsent = [r.delivery_id for r in retries
                  if not hookline.dispatcher.schedule(r.delivery_id, r.endpoint_id, r.countdown)]
        hookline.deliveries.park(unsent)
        return {"succeeded": len(outcome.succeeded), "retrying": len(retries),
                "parked": len(outcome.parked) + len(unsent), "dead": len(outcome.dead),
                "skipped": len(outcome.skipped)}

    @app.task(name=DEAD_LETTER_TASK)
    def dead_letter(delivery_id: str, reason: str) -> None:
        log.warning("dead letter %s (%s); `hookline dlq list` shows it", delivery_id, reason)

    @app.task(name=SWEEP_TASK)
    def sweep() -> dict[str, int]:
        report = hookline.sweeper.run()
        for delivery_id, reason in report.dead:
            hookline.dispatcher.dead_letter(delivery_id, reason)
        if report.lost or report.dispatched or report.broker_reset:
            log.warning("sweep: %d lost attempts recovered, %d deliveries sent, broker reset=%s",
                        report.lost, report.dispatched, report.broker_reset)
        return {"lost": report.lost, "dispatched": report.dispatched,
                "broker_reset": int(report.broker_reset)}
