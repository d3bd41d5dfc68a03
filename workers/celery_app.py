"""The Celery app factory: every broker and worker setting in one place.

Configuration choices and why:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only
  after its delivery is recorded, and a killed pool child gives it back. A message
  that kills its worker every time is capped by the delivery's attempt budget, which
  the claim counts in SQL before any POST.
* ``worker_prefetch_multiplier`` (``HOOKLINE_WORKER_PREFETCH``, 2): a thread that
  finishes a batch finds the next message already reserved; with 1, the threads pool
  waits for the consumer loop to wake up between messages (celery#6941).
* ``visibility_timeout`` > 2 × the longest broker countdown: no retry waits in a
  worker long enough to be handed to a second one; longer waits are parked in SQL.
* task events on, so Flower shows live throughput per task and queue; each task's
  result counts its deliveries. No task-sent events: they cost one more publish per
  message, and Flower's throughput comes from the worker's events.
* On RabbitMQ (``amqp://``): durable queues, persistent messages and publisher
  confirms, so a publish the broker did not take raises and its deliveries are parked
  in SQL. There is no visibility timeout; a worker holds a countdown retry unacknowledged
  instead, which the settings keep well inside RabbitMQ's ``consumer_timeout``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from app.names import DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, PRUNE_TASK, SWEEP_TASK, partition_queue
from config.settings import Settings


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_kind == "amqp":
        # The publish waits for the broker's ack: a refused one raises, and is parked.
        return {"confirm_publish": True}
    options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        # Above the worker's concurrency, or threads fight over connections.
        "max_connections": max(64, settings.worker_concurrency * 4),
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "health_check_interval": 10,
    }
    if settings.broker_key_prefix:
        options["global_keyprefix"] = settings.broker_key_prefix
    return options


def hookline_queues(settings: Settings) -> list[Queue]:
    """Every queue Hookline consumes, as declared on the broker (durable)."""
    queues = [Queue(partition_queue(i), durable=True) for i in range(settings.partitions)]
    return [*queues, Queue(DEAD_LETTER_QUEUE, durable=True), Queue(MAINTENANCE_QUEUE, durable=True)]


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app for *settings* (tasks are registered by :mod:`workers.main`)."""
    app = Celery("hookline", set_as_current=False)
    queues = hookline_queues(settings)
    app.conf.update(
        broker_url=settings.resolved_broker_url,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=5,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        task_default_delivery_mode="persistent",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.worker_prefetch,
        worker_send_task_events=True,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_queues=queues,
        task_default_queue=MAINTENANCE_QUEUE,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.5},
        beat_schedule={
            "hookline-sweep": {
                "task": SWEEP_TASK,
                "schedule": settings.sweep_interval,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(settings.sweep_interval, 1)},
            },
            # Retention (app/pruning.py): small batches, so it never holds delivery up.
            "hookline-prune": {
                "task": PRUNE_TASK,
                "schedule": settings.prune_interval,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": max(settings.prune_interval, 1)},
            },
        },
        beat_schedule_filename=str(settings.data_dir.resolve() / "celerybeat-schedule"),
        timezone="UTC",
        enable_utc=True,
    )
    return app
