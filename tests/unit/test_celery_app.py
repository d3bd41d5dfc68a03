"""The Celery app's broker settings: Redis transport options, or RabbitMQ's durable queues,
persistent messages and publisher confirms."""

from __future__ import annotations

import pytest

from app.names import DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE
from config.settings import get_settings
from workers.celery_app import broker_transport_options, create_celery_app, hookline_queues

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/hookline"


class TestRabbitMQ:
    """On RabbitMQ a publish waits for the broker's confirm, and nothing is transient."""

    def test_publishes_are_confirmed_and_redis_options_are_left_out(self) -> None:
        options = broker_transport_options(get_settings(broker_url=RABBITMQ))
        assert options == {"confirm_publish": True}

    def test_queues_are_durable_and_messages_persistent(self) -> None:
        settings = get_settings(broker_url=RABBITMQ, partitions=3)
        app = create_celery_app(settings)
        assert app.conf.broker_url == RABBITMQ
        assert app.conf.task_default_delivery_mode == "persistent"
        names = [queue.name for queue in app.conf.task_queues]
        assert names == ["hookline.p0", "hookline.p1", "hookline.p2", DEAD_LETTER_QUEUE,
                         MAINTENANCE_QUEUE]
        assert all(queue.durable and not queue.auto_delete for queue in app.conf.task_queues)
        assert [q.name for q in hookline_queues(settings)] == names


class TestRedis:
    """On Redis the visibility timeout and the key prefix reach kombu's transport."""

    @pytest.mark.parametrize("prefix", ["", "run-a:"])
    def test_the_visibility_timeout_and_the_prefix_are_passed_on(self, prefix: str) -> None:
        options = broker_transport_options(get_settings(
            broker_url="redis://127.0.0.1:6379/0", broker_key_prefix=prefix, visibility_timeout=900))
        assert options["visibility_timeout"] == 900
        assert options.get("global_keyprefix") == (prefix or None)
        assert "confirm_publish" not in options
