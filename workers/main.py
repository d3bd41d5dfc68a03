"""The worker process's Celery app: the configured app with the tasks registered,
wired to the process's :class:`app.client.Hookline`.

Producers, beat and Flower send or watch tasks by name and use
:func:`workers.celery_app.create_celery_app` alone; only a worker needs the tasks.
"""

from __future__ import annotations

from celery import Celery

from app.client import Hookline
from app.observability import enable_multiprocess
from config.settings import Settings
from workers.celery_app import create_celery_app
from workers.tasks import register_tasks


def create_worker_app(settings: Settings) -> Celery:
    if settings.metrics_dir is not None:
        # Before any metric exists, and before the prefork pool forks its children.
        enable_multiprocess(settings.metrics_dir)
    app = create_celery_app(settings)
    register_tasks(app, Hookline(settings, sender=app))
    return app
