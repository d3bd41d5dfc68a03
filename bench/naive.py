"""The naive baseline: one Celery task per event, a bare ``requests.post``, no database.

This is what a team writes on day one (see /work/shared/CELERY-NOTES.md item 9): no
signing, no delivery records, no partitions, Celery defaults (early ack, prefetch 4).
``bench/run.py`` starts it as::

    celery -A bench.naive worker --pool=prefork --concurrency=2 --loglevel=WARNING

with ``NAIVE_BROKER_URL`` and ``NAIVE_KEY_PREFIX`` in the environment, so it shares the
benchmark's Redis but none of its keys.
"""

from __future__ import annotations

import os

import requests
from celery import Celery

DELIVER_TASK = "bench.naive.deliver"
QUEUE = "naive"


def create_app(broker_url: str, key_prefix: str) -> Celery:
    """A minimal Celery app on *broker_url* whose Redis keys all start with *key_prefix*."""
    app = Celery("naive", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options={"global_keyprefix": key_prefix},
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        worker_hijack_root_logger=False,
    )

    @app.task(name=DELIVER_TASK, autoretry_for=(requests.RequestException,), retry_backoff=True)
    def deliver(url: str, body: str, event_id: str) -> int:
        response = requests.post(
            url, data=body.encode(),
            headers={"X-Event-Id": event_id, "Content-Type": "application/json"},
            timeout=(5, 30),
        )
        response.raise_for_status()  # an HTTPError is a RequestException: retried
        return response.status_code

    return app


app = create_app(os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/0"),
                 os.environ.get("NAIVE_KEY_PREFIX", "hookline-bench-naive:"))
