"""The database schema: the durable record of every event, delivery and attempt.

The database is the source of truth; the broker only carries delivery ids. A
delivery's life is an explicit state machine::

    pending ──claim──▶ in_flight ──▶ succeeded
       ▲                  │  ├─────▶ retry_scheduled ──(due)──▶ in_flight …
       │                  │  └─────▶ dead ──requeue──▶ pending
       └──(lease expired: sweeper)┘

``queued_at`` says a broker message was sent for the current wait; NULL means the
delivery is parked in SQL and the sweeper will enqueue it when ``next_attempt_at``
comes.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    RETRY_SCHEDULED = "retry_scheduled"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


#: States a delivery ends in; only these may be pruned or replayed.
FINAL_STATES = (DeliveryState.SUCCEEDED, DeliveryState.DEAD)

#: States a delivery can be claimed from.
CLAIMABLE_STATES = (DeliveryState.PENDING, DeliveryState.RETRY_SCHEDULED)

#: States of a delivery not yet finished: with an ordering key, it holds back later ones.
UNFINISHED_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT, DeliveryState.RETRY_SCHEDULED)


class Ordering(enum.StrEnum):
    """An endpoint's delivery order (app/ordering.py)."""

    #: Deliveries go out as they come, in parallel.
    NONE = "none"
    #: One delivery at a time per ordering key, in publish order.
    KEY = "key"


class DeadReason(enum.StrEnum):
    PERMANENT_4XX = "permanent_4xx"
    EXHAUSTED = "exhausted"
    ENDPOINT_DISABLED = "endpoint_disabled"
    PERMANENT_ERROR = "permanent_error"
    #: The egress policy refused the destination (app/egress.py); nothing was sent.
    BLOCKED_DESTINATION = "blocked_destination"
    #: The endpoint was deleted while the delivery waited.
    ENDPOINT_DELETED = "endpoint_deleted"


class Environment(enum.StrEnum):
    """An event reaches only the endpoints of its own environment."""

    PRODUCTION = "production"
    STAGING = "staging"


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: Bumped in the same transaction as any change to the tenant's endpoints, so a
    #: publisher's cached subscriber list (app/subscribers.py) knows when it is stale.
    endpoints_version: Mapped[int] = mapped_column(Integer, default=0)
    #: Days payloads and attempts are kept (app/pruning.py); None means HOOKLINE_RETENTION_DAYS.
    retention_days: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """A management API key: it grants one tenant; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's first characters, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class IncomingWebhook(Base):
    """An incoming webhook: calls to its secret URL publish one event type for one tenant.

    Only the token's SHA-256 is stored (see :mod:`app.inbound`); revoked rows stay for
    the record but no longer publish.
    """

    __tablename__ = "incoming_webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(20), default=Environment.PRODUCTION)
    event_type: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters, to tell hooks apart in listings.
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSONDoc)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    contract: Mapped[str] = mapped_column(String(40), default="crewpass")
    #: The current signing secret (or, for ``cr3dentials``, the auth header's value).
    secret: Mapped[str] = mapped_column(String(200))
    #: The secret before the last rotation, still used until ``previous_secret_expires_at``.
    previous_secret: Mapped[str | None] = mapped_column(String(200), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: Static extra headers sent with every delivery.
    headers: Mapped[dict[str, str]] = mapped_column(JSONDoc, default=dict)
    #: The header that carries the static credential (``cr3dentials``), e.g. ``X-API-Key``.
    auth_header: Mapped[str | None] = mapped_column(String(100), default=None)
    environment: Mapped[str] = mapped_column(String(20), default=Environment.PRODUCTION)
    #: Set by DELETE: the row stays for the delivery log, but receives nothing more.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: A one-off destination created for one event (``webhookUrl``), hidden from lists.
    one_off: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    max_attempts: Mapped[int | None] = mapped_column(Integer, default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    #: ``key``: deliveries with the same ordering key go one at a time, in order.
    ordering: Mapped[str] = mapped_column(String(10), default=Ordering.NONE,
                                          server_default=Ordering.NONE.value)
    #: Deliveries per second across the fleet (app/engine/ratelimit.py); NULL: no limit.
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float, default=None)
    #: Tokens the endpoint's bucket holds at most (a burst after a quiet spell).
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer, default=None)
    #: The circuit breaker (app/engine/circuit.py): closed, open or half_open.
    circuit_state: Mapped[str] = mapped_column(String(20), default="closed")
    #: Failures in a row; the circuit opens at the policy's threshold.
    circuit_failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit_cooloff_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: While open: when a probe may go; while half-open: when the probe counts as lost.
    circuit_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: The first failure since the last success (what the circuit counts as one); None
    #: while it succeeds. A streak of ``HOOKLINE_AUTO_DISABLE_AFTER`` disables the
    #: endpoint (app/auto_disable.py); re-enabling clears it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    tenant: Mapped[Tenant] = relationship()


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key", name="uq_events_idem"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(128), index=True)
    #: NULL once pruned (``pruned_at`` set): the deliveries keep their states, not the body.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    environment: Mapped[str] = mapped_column(String(20), default=Environment.PRODUCTION)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: The entity this event is about (given, or the catalogue's declared field).
    ordering_key: Mapped[str | None] = mapped_column(String(200), default=None)
    #: 1, 2, 3… per tenant and ordering key, in commit order (``ordering_sequences``).
    sequence: Mapped[int | None] = mapped_column(BigInteger, default=None)


_UNFINISHED_ORDERED = text(
    "ordering_key IS NOT NULL AND state IN ('pending', 'in_flight', 'retry_scheduled')")


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
        Index("ix_deliveries_state_due", "state", "next_attempt_at"),
        Index("ix_deliveries_endpoint_state", "endpoint_id", "state"),
        #: A replay walks one tenant's deliveries by (created_at, id) within its window.
        Index("ix_deliveries_tenant_created", "tenant_id", "created_at", "id"),
        #: Ordered endpoints: the unfinished deliveries of one key, by position; the
        #: claim's "no earlier one unfinished" test reads it (app/ordering.py).
        Index("ix_deliveries_ordering", "endpoint_id", "ordering_key", "position",
              postgresql_where=_UNFINISHED_ORDERED, sqlite_where=_UNFINISHED_ORDERED),
        #: Deliveries held back behind an earlier one of their key (few at any time).
        Index("ix_deliveries_blocked", "endpoint_id",
              postgresql_where=text("blocked"), sqlite_where=text("blocked")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    state: Mapped[str] = mapped_column(String(20), default=DeliveryState.PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    dead_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    requeue_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Set only for an endpoint with ``ordering = key``: the event's key and sequence.
    ordering_key: Mapped[str | None] = mapped_column(String(200), default=None)
    position: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: Waiting, with no message, for an earlier delivery of its key to finish.
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    event: Mapped[Event] = relationship()
    endpoint: Mapped[Endpoint] = relationship()


class OrderingSequence(Base):
    """The last sequence number given per tenant and ordering key (app/ordering.py)."""

    __tablename__ = "ordering_sequences"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    ordering_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempt_number: Mapped[int] = mapped_column(Integer)
    #: Indexed for /metrics, which reads the attempts of a recent window.
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error_class: Mapped[str | None] = mapped_column(String(120), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    response_excerpt: Mapped[str | None] = mapped_column(Text, default=None)


class ReplayStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Replay(Base):
    """A resend of a tenant's deliveries in a time window (app/replays.py).

    The window is walked in ``(created_at, id)`` order; the cursor is the last delivery
    handled, written in the same transaction as that batch, so a stopped replay resumes
    after it and never handles a delivery twice.
    """

    __tablename__ = "replays"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(String(40), default=None)
    event_type: Mapped[str | None] = mapped_column(String(128), default=None)
    #: succeeded, dead or any.
    state_filter: Mapped[str] = mapped_column(String(20))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=ReplayStatus.RUNNING)
    cursor_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cursor_id: Mapped[str | None] = mapped_column(String(40), default=None)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    pruned: Mapped[int] = mapped_column(Integer, default=0)
    skipped_disabled: Mapped[int] = mapped_column(Integer, default=0)
    skipped_active: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ReplayItem(Base):
    """One delivery a replay handled and what it did with it; the key is the guarantee."""

    __tablename__ = "replay_items"

    replay_id: Mapped[str] = mapped_column(ForeignKey("replays.id", ondelete="CASCADE"),
                                           primary_key=True)
    source_delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True)
    #: sent, pruned, skipped_disabled or skipped_active.
    outcome: Mapped[str] = mapped_column(String(20))
