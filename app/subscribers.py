"""Who receives an event: each tenant's live endpoints, cached per process.

A publish needs the tenant's endpoints of one environment and their filters. Reading
them on every publish is most of a publish's SQL, so each process keeps them, keyed by
tenant and environment and stamped with the tenant's ``endpoints_version``. Every
change to an endpoint bumps that version in the same transaction (the ORM hook below,
installed on every session factory by :func:`app.db.session_factory`, and the
engine's own updates), and a publish reads the version with the tenant row it
needs anyway: a stale entry is noticed on the next publish in any process, at no extra
round trip.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session, UOWTransaction

from app.matching import matches_any
from app.models import Endpoint, Ordering, Tenant


@dataclass(frozen=True, slots=True)
class Subscriber:
    endpoint_id: str
    filters: tuple[str, ...]
    #: The endpoint takes one delivery at a time per ordering key (app/ordering.py).
    ordered: bool = False


class SubscriberCache:
    """A tenant's live, listed endpoints per environment, valid for one endpoints version."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[tuple[str, str], tuple[int, tuple[Subscriber, ...]]] = {}
        #: A tenant reference (id or name) → (tenant id, endpoints version last seen).
        self.tenants: dict[str, tuple[str, int]] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def endpoints(self, conn: Connection, tenant_id: str, version: int,
                  environment: str) -> tuple[Subscriber, ...]:
        key = (tenant_id, environment)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            return entry[1]
        rows = conn.execute(
            select(Endpoint.id, Endpoint.event_types, Endpoint.ordering)
            .where(Endpoint.tenant_id == tenant_id, Endpoint.enabled,
                   Endpoint.deleted_at.is_(None), Endpoint.one_off.is_(False),
                   Endpoint.environment == environment)
            .order_by(Endpoint.created_at, Endpoint.id)
        ).all()
        subscribers = tuple(Subscriber(row[0], tuple(row[1] or ()), row[2] == Ordering.KEY)
                            for row in rows)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (version, subscribers)
        return subscribers

    def cached(self, tenant_id: str, version: int, environment: str,
               event_type: str) -> list[str] | None:
        """The matching endpoint ids if this version's list is at hand (no database read)."""
        entry = self._entries.get((tenant_id, environment))
        if entry is None or entry[0] != version:
            return None
        return [s.endpoint_id for s in entry[1] if matches_any(list(s.filters), event_type)]

    def ordered(self, conn: Connection, tenant_id: str, version: int,
                environment: str) -> frozenset[str]:
        """Ids of the endpoints that deliver in order per key."""
        return frozenset(s.endpoint_id for s in self.endpoints(conn, tenant_id, version, environment)
                         if s.ordered)

    def matching(self, conn: Connection, tenant_id: str, version: int, environment: str,
                 event_type: str) -> list[str]:
        """Ids of the endpoints whose filters match *event_type*, oldest first."""
        return [s.endpoint_id for s in self.endpoints(conn, tenant_id, version, environment)
                if matches_any(list(s.filters), event_type)]


def bump_endpoints_version(conn: Connection, tenant_ids: set[str]) -> None:
    """Mark the tenants' cached subscriber lists stale (inside the changing transaction)."""
    if tenant_ids:
        conn.execute(update(Tenant).where(Tenant.id.in_(sorted(tenant_ids)))
                     .values(endpoints_version=Tenant.endpoints_version + 1))


def endpoint_changes_bump_the_version(session: Session, _flush: UOWTransaction,
                                       _instances: Any) -> None:
    """Any ORM change to a listed endpoint bumps its tenant's version in the same
    transaction (one-off destinations are never subscribers, so they do not)."""
    tenants = {obj.tenant_id for obj in (*session.new, *session.dirty, *session.deleted)
               if isinstance(obj, Endpoint) and obj.tenant_id and not obj.one_off}
    if tenants:
        bump_endpoints_version(session.connection(), tenants)
