"""Broker edge: turns delivery ids into Celery messages on the right partition queue.

Messages carry delivery ids only; everything else is read from the database when the
task runs. Each delivery message also carries the time it was sent (header
``hookline_sent``), which lets the sweeper tell a message still waiting in its queue from
one a worker took and lost (:mod:`app.broker_view`). Sending never raises: the ids whose
message could not be sent are returned, and the caller parks them in SQL for the sweeper.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

from app.broker_view import SENT_HEADER
from app.names import (
    DEAD_LETTER_QUEUE,
    DEAD_LETTER_TASK,
    DELIVER_TASK,
    MAINTENANCE_QUEUE,
    REPLAY_TASK,
)
from app.partitioning import queue_for

log = logging.getLogger(__name__)


class TaskSender(Protocol):
    def send_task(self, name: str, args: Any = None, **options: Any) -> Any: ...


class Dispatcher:
    """Publishes delivery work onto partitioned queues through a Celery app."""

    def __init__(self, sender: TaskSender, *, partitions: int, task_batch: int) -> None:
        self._sender = sender
        self.partitions = partitions
        self.task_batch = task_batch

    def enqueue(self, deliveries: Iterable[tuple[str, str]]) -> list[str]:
        """Send ``(delivery_id, endpoint_id)`` pairs now; returns the ids that could not be sent."""
        return self._send_batches(deliveries)

    def schedule_many(self, deliveries: Iterable[tuple[str, str]], countdown: float) -> list[str]:
        """Send ``(delivery_id, endpoint_id)`` pairs to run after *countdown* seconds; returns
        the ids that could not be sent."""
        return self._send_batches(deliveries, countdown=countdown)

    def _send_batches(self, deliveries: Iterable[tuple[str, str]], **options: Any) -> list[str]:
        """One message per partition queue and ``task_batch`` ids; the ids not sent."""
        by_queue: dict[str, list[str]] = defaultdict(list)
        for delivery_id, endpoint_id in deliveries:
            by_queue[queue_for(endpoint_id, self.partitions)].append(delivery_id)
        failed: list[str] = []
        for queue, ids in by_queue.items():
            for start in range(0, len(ids), self.task_batch):
                chunk = ids[start : start + self.task_batch]
                if not self._send(DELIVER_TASK, [chunk], queue=queue,
                                  headers={SENT_HEADER: time.time()}, **options):
                    failed.extend(chunk)
        return failed

    def enqueue_each(self, deliveries: Iterable[tuple[str, str]]) -> list[str]:
        """One message per delivery (deliveries that may kill their worker go alone, so
        they take no others down with them); returns the ids that could not be sent."""
        failed: list[str] = []
        for delivery_id, endpoint_id in deliveries:
            failed += self._send_batches([(delivery_id, endpoint_id)])
        return failed

    def dead_letter(self, delivery_id: str, reason: str) -> bool:
        """Put a notice of a dead letter on the dead-letter queue (the row is the record)."""
        return self._send(DEAD_LETTER_TASK, [delivery_id, reason], queue=DEAD_LETTER_QUEUE)

    def replay(self, replay_id: str) -> bool:
        """Ask a worker to run (or resume) a replay (:mod:`app.replays`)."""
        return self._send(REPLAY_TASK, [replay_id], queue=MAINTENANCE_QUEUE)

    def _send(self, name: str, args: list[Any], **options: Any) -> bool:
        try:
            self._sender.send_task(name, args=args, **options)
        except Exception as exc:  # any broker failure: the database still has the row
            log.warning("could not publish %s to the broker: %s", name, exc)
            return False
        return True
