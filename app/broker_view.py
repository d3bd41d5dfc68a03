"""What the broker still holds: per partition queue, how far its waiting messages go back.

Every delivery message carries the time it was sent (header ``hookline_sent``, set by
:mod:`app.dispatch`). A queue is first in, first out, so when the oldest message still
waiting in it was sent at *T*, every message sent to that queue before *T* has left
it: taken by a worker, which either runs it soon or died holding it. The sweeper
compares that *horizon* with the deliveries' ``queued_at`` in SQL (:mod:`app.sweeper`):
a delivery due for a while whose message left its queue and that no worker claimed has
probably lost its message.

On Redis (kombu's transport: ``LPUSH`` to send, ``BRPOP`` to take, so the oldest
message is the list's last element) the horizon is read with ``LLEN`` and ``LINDEX -1``;
an empty queue's horizon is now. A queue whose oldest message carries no time (sent
by an older version) has no horizon: its deliveries wait for ``HOOKLINE_REDISPATCH_AFTER``.

On RabbitMQ (:class:`AmqpQueueHorizons`) a message cannot be read without taking it, so
only the count of ready messages is known (a passive ``queue.declare``): an empty queue's
horizon is now, any other queue has none. That is still sound: a message a worker holds
is not counted, and RabbitMQ makes a dead consumer's unacknowledged messages ready again
the moment its connection closes, so they are counted, not taken for lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: The message header holding the ``time.time()`` of sending.
SENT_HEADER = "hookline_sent"


class QueueHorizons(Protocol):
    def horizons(self, queues: Sequence[str]) -> dict[str, float | None]:
        """For each queue, the send time before which no message waits in it, or None."""
        ...


class RedisListClient(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...


def sent_at(raw: bytes | str | None) -> float | None:
    """The ``hookline_sent`` time of one kombu Redis message, or None if it has none."""
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        value = message.get("headers", {}).get(SENT_HEADER)
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


class RedisQueueHorizons:
    """Horizons read from kombu's Redis lists (``prefix`` is the transport's key prefix)."""

    def __init__(self, client: RedisListClient, prefix: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock

    def horizons(self, queues: Sequence[str]) -> dict[str, float | None]:
        now = self.clock()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(self.prefix + queue)
            pipe.lindex(self.prefix + queue, -1)
        replies = pipe.execute()
        found: dict[str, float | None] = {}
        for i, queue in enumerate(queues):
            length, oldest = replies[2 * i], replies[2 * i + 1]
            found[queue] = now if not length else sent_at(oldest)
        return found


class AmqpQueueHorizons:
    """Horizons from each queue's count of ready messages (*counts*, from the broker)."""

    def __init__(self, counts: Callable[[Sequence[str]], Mapping[str, int]],
                 clock: Callable[[], float] = time.time) -> None:
        self.counts = counts
        self.clock = clock

    def horizons(self, queues: Sequence[str]) -> dict[str, float | None]:
        now = self.clock()
        counts = self.counts(queues)
        return {queue: now if counts.get(queue) == 0 else None for queue in queues}
