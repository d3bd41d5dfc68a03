"""Auto-disable: an endpoint that has failed continuously for too long is switched off.

"Continuously" is the endpoint's failing streak, ``failing_since``: the first failure
since its last success, kept by the engine's record (:mod:`app.engine.record`) and
cleared by a success or by re-enabling. When a streak has lasted
``HOOKLINE_AUTO_DISABLE_AFTER`` (5 days by default; 0 never disables) the sweeper
(:mod:`app.sweeper`) disables the endpoint with the reason on its row and, in the same
transaction, writes ``hookline.endpoint.disabled`` for the tenant's subscribers
(:mod:`app.announce`). Checked in the sweeper, not in the record, because a streak
comes of age with the clock: an open circuit sends one probe per cool-off, and an
endpoint with nothing to deliver sends nothing at all.

SQL (the caller's transaction); the rule is :func:`app.operational.auto_disable_due`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from app.models import Endpoint
from app.operational import (
    ENDPOINT_DISABLED,
    TRIGGER_FAILING,
    Notice,
    auto_disable_due,
    endpoint_disabled,
    streak_reason,
)
from app.subscribers import bump_endpoints_version


def disable_failing(conn: Connection, *, now: datetime, after_seconds: float,
                    limit: int = 500) -> list[Notice]:
    """Disable the endpoints whose streak is *after_seconds* old (at most *limit* per call);
    the ``hookline.endpoint.disabled`` notice for each, to announce in this transaction."""
    if after_seconds <= 0:
        return []
    cutoff = now - timedelta(seconds=after_seconds)
    rows = conn.execute(
        select(Endpoint.id, Endpoint.tenant_id, Endpoint.environment, Endpoint.failing_since)
        .where(Endpoint.enabled, Endpoint.deleted_at.is_(None), Endpoint.one_off.is_(False),
               Endpoint.failing_since.is_not(None), Endpoint.failing_since <= cutoff)
        .order_by(Endpoint.failing_since, Endpoint.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    notices: list[Notice] = []
    for endpoint_id, tenant_id, environment, since in rows:
        if since is None or not auto_disable_due(since, now, after_seconds):
            continue
        reason = streak_reason(since, after_seconds)
        conn.execute(update(Endpoint).where(Endpoint.id == endpoint_id, Endpoint.enabled)
                     .values(enabled=False, disabled_reason=reason, updated_at=now))
        notices.append(Notice(tenant_id, environment, ENDPOINT_DISABLED, endpoint_id,
                              endpoint_disabled(endpoint_id, reason=reason,
                                                trigger=TRIGGER_FAILING, at=now,
                                                failing_since=since)))
    bump_endpoints_version(conn, {n.tenant_id for n in notices})
    return notices
