"""The sweeper reads from the broker how far back the messages waiting in each queue go."""

from __future__ import annotations

import json

import fakeredis

from app.broker_view import SENT_HEADER, AmqpQueueHorizons, RedisQueueHorizons, sent_at

NOW = 1_800_000_000.0


def message(sent: float | None) -> str:
    headers = {"task": "hookline.deliver"} | ({SENT_HEADER: sent} if sent is not None else {})
    return json.dumps({"body": "W10=", "headers": headers, "properties": {}})


class TestHorizons:
    def test_an_empty_queue_holds_nothing_sent_before_now(self) -> None:
        client = fakeredis.FakeRedis()
        view = RedisQueueHorizons(client, clock=lambda: NOW)
        assert view.horizons(["hookline.p0"]) == {"hookline.p0": NOW}

    def test_a_queue_reaches_back_to_its_oldest_message(self) -> None:
        client = fakeredis.FakeRedis()
        # kombu sends with LPUSH and takes with BRPOP: the oldest is the last element.
        client.lpush("hookline.p1", message(NOW - 30))
        client.lpush("hookline.p1", message(NOW - 10))
        view = RedisQueueHorizons(client, clock=lambda: NOW)
        assert view.horizons(["hookline.p1"]) == {"hookline.p1": NOW - 30}

    def test_a_message_without_a_send_time_leaves_the_queue_without_a_horizon(self) -> None:
        client = fakeredis.FakeRedis()
        client.lpush("hookline.p2", message(None))
        view = RedisQueueHorizons(client, clock=lambda: NOW)
        assert view.horizons(["hookline.p2"]) == {"hookline.p2": None}

    def test_the_transport_key_prefix_is_used(self) -> None:
        client = fakeredis.FakeRedis()
        client.lpush("run-a:hookline.p0", message(NOW - 5))
        view = RedisQueueHorizons(client, "run-a:", clock=lambda: NOW)
        assert view.horizons(["hookline.p0"]) == {"hookline.p0": NOW - 5}


class TestSentAt:
    def test_garbage_has_no_send_time(self) -> None:
        assert sent_at(b"not json") is None
        assert sent_at(None) is None
        assert sent_at(json.dumps({"headers": {SENT_HEADER: "soon"}})) is None


class TestAmqpHorizons:
    """RabbitMQ tells only how many messages are ready: an empty queue's horizon is now."""

    def test_an_empty_queue_holds_nothing_sent_before_now(self) -> None:
        view = AmqpQueueHorizons(lambda queues: dict.fromkeys(queues, 0), clock=lambda: NOW)
        assert view.horizons(["hookline.p0", "hookline.p1"]) == {"hookline.p0": NOW,
                                                                 "hookline.p1": NOW}

    def test_a_queue_with_ready_messages_has_no_horizon(self) -> None:
        view = AmqpQueueHorizons(lambda queues: {"hookline.p0": 3, "hookline.p1": 0},
                                 clock=lambda: NOW)
        assert view.horizons(["hookline.p0", "hookline.p1"]) == {"hookline.p0": None,
                                                                 "hookline.p1": NOW}

    def test_a_queue_the_broker_did_not_count_has_no_horizon(self) -> None:
        view = AmqpQueueHorizons(lambda queues: {}, clock=lambda: NOW)
        assert view.horizons(["hookline.p2"]) == {"hookline.p2": None}
