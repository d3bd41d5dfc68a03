"""The management API (FastAPI), served by ``hookline api``; OpenAPI at ``/docs``.

Routes: webhooks CRUD, secret rotation and test sends (:mod:`app.api.webhooks`),
events (:mod:`app.api.events`), delivery logs, resends and dead letters
(:mod:`app.api.deliveries`), the event catalogue and health probes
(:mod:`app.api.system`), incoming webhooks and ``POST /hooks/{token}``
(:mod:`app.api.incoming`). Errors: Hookline's input errors are 422 with the reason,
unknown or foreign ids 404, a missing or wrong key 401, an oversized body 413.
"""

from __future__ import annotations

from app.api.app import create_app

__all__ = ["create_app"]
