"""Step 6, schedule: after the record commits, the messages that keep things moving.

* Retries due within ``HOOKLINE_BROKER_COUNTDOWN_MAX`` go back to their partition
  queue with a Celery countdown. Retries of one batch for one queue whose waits fall
  in the same second share one message (sent for the latest of them, so none arrives
  early): a worker holds a few countdown messages, not one per delivery.
* Longer waits were parked in SQL by the record (``queued_at`` NULL); the sweeper
  sends them when due.
* Each dead letter gets a notice on ``hookline.dead``.
* Whatever the broker refused is parked, so the sweeper sends it later.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.dispatch import Dispatcher
from app.partitioning import queue_for


@dataclass(frozen=True, slots=True)
class ScheduledRetry:
    delivery_id: str
    endpoint_id: str
    countdown: float


def group_retries(retries: Sequence[ScheduledRetry], partitions: int
                  ) -> list[tuple[str, float, list[tuple[str, str]]]]:
    """(queue, countdown, [(delivery id, endpoint id)]) per message to send."""
    groups: dict[tuple[str, int], list[ScheduledRetry]] = defaultdict(list)
    for retry in retries:
        groups[(queue_for(retry.endpoint_id, partitions), math.floor(retry.countdown))].append(retry)
    return [(queue, max(r.countdown for r in items), [(r.delivery_id, r.endpoint_id) for r in items])
            for (queue, _second), items in groups.items()]


def send_follow_ups(dispatcher: Dispatcher, retries: Sequence[ScheduledRetry],
                    dead: Sequence[tuple[str, str]], park: Callable[[list[str]], None]) -> int:
    """Send retry messages and dead-letter notices; park what could not be sent.

    Returns the number of deliveries parked.
    """
    unsent: list[str] = []
    for _queue, countdown, pairs in group_retries(retries, dispatcher.partitions):
        unsent += dispatcher.schedule_many(pairs, countdown)
    for delivery_id, reason in dead:
        dispatcher.dead_letter(delivery_id, reason)
    if unsent:
        park(unsent)
    return len(unsent)
