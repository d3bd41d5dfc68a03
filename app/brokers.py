"""The broker as Hookline reads it outside Celery: readiness, queue lengths, the reset marker.

Celery sends and consumes the messages. Besides that, Hookline asks the broker three
things: does it answer (``/readyz``), how many messages wait on each queue (``/metrics``,
the sweeper's horizons in :mod:`app.broker_view`), and has it lost what it held (the
sweeper's *epoch*). Each broker answers them its own way:

* **Redis** (:class:`RedisBroker`): ``PING``, ``LLEN`` of each list, and an epoch key.
  Redis without persistence loses everything on a restart or ``FLUSHALL``; the missing
  key says so.
* **RabbitMQ** (:class:`AmqpBroker`): a connection, a passive ``queue.declare`` per
  queue (its ``message_count`` counts ready messages, not those a worker holds), and a
  marker. Durable queues and persistent messages survive a restart, so a reset is the
  loss of the queues themselves: a node reset, a vhost deleted and recreated, a queue
  deleted. The marker is one persistent message on the durable queue named by the
  epoch key; it is *present* only while that message and every Hookline queue exist.
  Setting it declares any missing queue again, so messages sent after a reset land
  in a queue instead of vanishing at the exchange.

:class:`AmqpBroker` opens a short connection per call: the API asks from several
threads at once, and a connection per call never goes stale between sweeps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import redis
from amqp.exceptions import NotFound
from kombu import Connection, Producer, Queue

from app.broker_view import AmqpQueueHorizons, QueueHorizons, RedisQueueHorizons

log = logging.getLogger(__name__)

#: How long a probe waits for the broker to answer.
PROBE_TIMEOUT = 5.0
#: What a present RabbitMQ marker reads as (the message is counted, never taken).
PRESENT = "present"


class Broker(Protocol):
    def ping(self) -> bool:
        """True if the broker answers."""
        ...

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting on each queue (not those a worker holds); a missing queue has 0."""
        ...

    def get(self, name: str) -> Any:
        """The reset marker *name*, or None once the broker has lost its data."""
        ...

    def set(self, name: str, value: str, *args: Any, **kwargs: Any) -> Any:
        """Set the reset marker *name* (if it is not there)."""
        ...

    def horizons(self) -> QueueHorizons | None:
        """How far back each queue's waiting messages go (:mod:`app.broker_view`), if known."""
        ...


class RedisBroker:
    """Redis through one client; *prefix* is the transport's key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "", *, peekable: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        self.peekable = peekable

    def ping(self) -> bool:
        return bool(self.client.ping())

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(self.prefix + queue)
        return {queue: int(length) for queue, length in zip(queues, pipe.execute(), strict=True)}

    def get(self, name: str) -> Any:
        return self.client.get(name)

    def set(self, name: str, value: str, *args: Any, **kwargs: Any) -> Any:
        return self.client.set(name, value, *args, **kwargs)

    def horizons(self) -> QueueHorizons | None:
        return RedisQueueHorizons(self.client, self.prefix) if self.peekable else None


class AmqpBroker:
    """RabbitMQ at *url*; *queues* are Hookline's queues, declared as Celery declares them."""

    def __init__(self, url: str, queues: Sequence[Queue], *,
                 timeout: float = PROBE_TIMEOUT) -> None:
        self.url = url
        self.queues = list(queues)
        self.timeout = timeout

    def _connection(self) -> Connection:
        return Connection(self.url, connect_timeout=self.timeout,
                          transport_options={"confirm_publish": True})

    def ping(self) -> bool:
        with self._connection() as connection:
            connection.connect()
            return bool(connection.connected)

    def _counts(self, connection: Connection, names: Sequence[str]) -> dict[str, int | None]:
        """Ready messages per queue; None for a queue that does not exist."""
        found: dict[str, int | None] = {}
        channel = connection.channel()
        try:
            for name in names:
                try:
                    found[name] = int(channel.queue_declare(name, passive=True).message_count)
                except NotFound:
                    # The server closed the channel with the 404; go on with a new one.
                    found[name] = None
                    channel = connection.channel()
        finally:
            channel.close()
        return found

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        with self._connection() as connection:
            return {name: count or 0 for name, count in self._counts(connection, queues).items()}

    def get(self, name: str) -> Any:
        with self._connection() as connection:
            counts = self._counts(connection, [name, *(q.name for q in self.queues)])
        if not counts.pop(name):
            return None
        missing = sorted(queue for queue, count in counts.items() if count is None)
        if missing:
            log.warning("broker queues are gone: %s", ", ".join(missing))
            return None
        return PRESENT

    def set(self, name: str, value: str, *args: Any, **kwargs: Any) -> Any:
        """Declare every Hookline queue and the marker queue; put *value* on the marker
        queue if it is empty (two sweepers at once may both put one: it holds at most one)."""
        marker = Queue(name, durable=True, auto_delete=False, queue_arguments={"x-max-length": 1})
        with self._connection() as connection:
            channel = connection.channel()
            try:
                for queue in [*self.queues, marker]:
                    queue(channel).declare()
                if self._counts(connection, [name])[name]:
                    return False
                Producer(channel).publish(value, exchange="", routing_key=name,
                                          delivery_mode=2, serializer="json")
            finally:
                channel.close()
        return True

    def horizons(self) -> QueueHorizons:
        return AmqpQueueHorizons(self.queue_lengths)
