"""What Hookline asks RabbitMQ outside Celery: readiness, queue lengths, durable queues and
persistent messages, and a queue lost under a running worker noticed as a reset."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from kombu import Connection

from app.api import create_app
from app.names import BROKER_EPOCH_KEY
from app.partitioning import queue_for
from app.receiver import Receiver, Route
from tests.integration.conftest import Stack, free_port
from tests.integration.test_delivery_flow import delivery_rows, subscribe
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("broker", ["rabbitmq"],
                                                               indirect=True)]


def ready_count(url: str, queue: str) -> int | None:
    """Messages ready on *queue*, or None if there is no such queue."""
    with Connection(url, connect_timeout=5) as connection:
        try:
            return int(connection.channel().queue_declare(queue, passive=True).message_count)
        except connection.channel_errors:
            return None


class TestReadiness:
    """``/readyz`` asks the broker the deployment uses."""

    def test_ready_when_rabbitmq_answers_and_not_when_it_cannot_be_reached(
            self, make_stack: Callable[..., Stack]) -> None:
        stack = make_stack()
        with TestClient(create_app(stack.hookline)) as client:
            answer = client.get("/readyz")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"status": "ok", "database": True, "broker": True}
        nowhere = make_stack(broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
        with TestClient(create_app(nowhere.hookline)) as client:
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json() == {"status": "unavailable", "database": True, "broker": False}


class TestWhatTheBrokerHolds:
    """Queues are durable, messages persistent, and their lengths are read from RabbitMQ."""

    def test_a_waiting_message_is_persistent_on_a_durable_queue_and_counted(
            self, make_stack: Callable[..., Stack], receiver: Receiver) -> None:
        stack = make_stack()
        endpoint = subscribe(stack, receiver, "/later")
        stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        queue = queue_for(endpoint, stack.settings.partitions)
        url = stack.settings.resolved_broker_url
        # The publish may be coalesced with others for a moment before it is sent.
        wait_until(lambda: ready_count(url, queue) == 1, what="the message on its queue")
        assert stack.hookline.broker.queue_lengths([queue, "hookline.dead"]) == {
            queue: 1, "hookline.dead": 0}

        vhost = unquote(urlsplit(url).path[1:])
        listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "durable"],
                                check=True, capture_output=True, text=True, timeout=60).stdout
        durable = dict(line.split("\t") for line in listed.splitlines() if "\t" in line)
        assert durable[queue] == "true"

        with Connection(url, connect_timeout=5) as connection:
            message = connection.SimpleQueue(queue).get(timeout=5)
            assert message.properties["delivery_mode"] == 2
            assert message.headers["task"] == "hookline.deliver"
            message.requeue()


class TestQueueLoss:
    """Durable queues survive a restart; losing a queue itself is what a RabbitMQ reset is."""

    def test_a_queue_deleted_while_no_worker_consumes_it_is_declared_again_and_refilled(
            self, make_stack: Callable[..., Stack], receiver: Receiver) -> None:
        stack = make_stack(redispatch_after=600.0)
        endpoint = subscribe(stack, receiver, "/later")
        url = stack.settings.resolved_broker_url
        assert stack.hookline.sweeper.run().broker_reset  # a fresh vhost has no marker yet
        assert not stack.hookline.sweeper.run().broker_reset
        events = [stack.hookline.publish("acme", "crew.status.changed", {"n": n}).event_id
                  for n in range(3)]
        queue = queue_for(endpoint, stack.settings.partitions)
        wait_until(lambda: (ready_count(url, queue) or 0) >= 1, what="the messages on their queue")
        with Connection(url, connect_timeout=5) as connection:
            connection.channel().queue_delete(queue)

        report = stack.hookline.sweeper.run()
        assert report.broker_reset
        assert report.dispatched == 3
        assert ready_count(url, queue) == 1  # the three deliveries, in one message again
        assert not stack.hookline.sweeper.run().broker_reset
        stack.worker()
        wait_until(lambda: receiver.accepted("/later") == set(events), timeout=30,
                   what="the deliveries that were on the deleted queue")

    def test_a_queue_deleted_under_a_worker_loses_nothing(
            self, make_stack: Callable[..., Stack], receiver: Receiver) -> None:
        # The worker declares its queue again when RabbitMQ cancels its consumer; what was
        # sent to the missing queue is found by the horizons (redispatch_after is long).
        stack = make_stack(redispatch_after=600.0, lost_after=1.0)
        endpoint = subscribe(stack, receiver, "/steady", Route())
        worker = stack.worker()
        url = stack.settings.resolved_broker_url
        wait_until(lambda: ready_count(url, BROKER_EPOCH_KEY) == 1, what="the first sweep")
        first = stack.hookline.publish("acme", "crew.status.changed", {"n": 1})
        wait_until(lambda: receiver.accepted("/steady") == {first.event_id}, what="delivery")

        queue = queue_for(endpoint, stack.settings.partitions)
        with Connection(url, connect_timeout=5) as connection:
            connection.channel().queue_delete(queue)
        later = [stack.hookline.publish("acme", "crew.status.changed", {"n": n}).event_id
                 for n in range(2, 5)]
        wait_until(lambda: receiver.accepted("/steady") == {first.event_id, *later}, timeout=40,
                   what="the deliveries sent after the queue was deleted")
        assert worker.alive()
        wait_until(lambda: {row[0] for row in delivery_rows(stack, endpoint)} == {"succeeded"},
                   what="every row to say succeeded")
