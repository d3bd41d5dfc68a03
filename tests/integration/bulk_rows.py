"""Rows written straight into PostgreSQL in one statement each, for tests that need many.

Publishing 50,000 events through the API would measure publishing; these tests
measure what comes after, so the rows are generated server-side with
``generate_series`` (well under a second for 50,000 deliveries).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine


def insert_delivered(engine: Engine, *, tenant_id: str, endpoint_ids: list[str], events: int,
                     start: datetime, step_ms: int, state: str = "succeeded",
                     tag: str = "b") -> int:
    """*events* events of *tenant_id*, each delivered (*state*) to every endpoint, created
    *step_ms* apart from *start*, each delivery with one attempt; returns the deliveries."""
    params = {"tenant": tenant_id, "n": events, "start": start, "step": step_ms, "state": state,
              "tag": tag}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO events (id, tenant_id, event_type, payload, occurred_at, environment, "
            "created_at) SELECT 'evt_' || :tag || lpad(i::text, 10, '0'), :tenant, "
            "'crew.status.changed', jsonb_build_object('crew_id', 'c' || i), "
            ":start + i * (:step || ' milliseconds')::interval, 'production', "
            ":start + i * (:step || ' milliseconds')::interval FROM generate_series(1, :n) i"),
            params)
        for k, endpoint_id in enumerate(endpoint_ids):
            conn.execute(text(
                "INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, state, attempt_count, "
                "next_attempt_at, queued_at, last_status_code, succeeded_at, dead_reason, dead_at, "
                "requeue_count, created_at, updated_at) "
                "SELECT 'dlv_' || :tag || CAST(:k AS text) || lpad(i::text, 10, '0'), "
                "'evt_' || :tag || lpad(i::text, 10, '0'), :endpoint, :tenant, "
                "CAST(:state AS text), 1, t, t, "
                "CASE WHEN CAST(:state AS text) = 'succeeded' THEN 200 ELSE 400 END, "
                "CASE WHEN CAST(:state AS text) = 'succeeded' THEN t END, "
                "CASE WHEN CAST(:state AS text) = 'dead' THEN 'permanent_4xx' END, "
                "CASE WHEN CAST(:state AS text) = 'dead' THEN t END, 0, t, t "
                "FROM (SELECT i, :start + i * (:step || ' milliseconds')::interval AS t "
                "FROM generate_series(1, :n) i) s"), {**params, "k": str(k), "endpoint": endpoint_id})
        conn.execute(text(
            "INSERT INTO attempts (delivery_id, attempt_number, started_at, duration_ms, status_code, "
            "response_excerpt) SELECT d.id, 1, d.created_at, 12.5, d.last_status_code, "
            "'ok' FROM deliveries d WHERE d.tenant_id = :tenant AND d.id LIKE "
            "'dlv_' || :tag || '%'"), params)
    return events * len(endpoint_ids)
