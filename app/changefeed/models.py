"""Change-feed tables: the outbox, and what each polling watcher remembers.

``outbox`` holds one row per event to publish, written in the same transaction as the
change that caused it (:mod:`app.changefeed.capture`) or by a polling watcher
(:mod:`app.changefeed.polling`). Its ``event_id`` is fixed when the row is written,
so relaying it twice can never publish the change under two ids. A row moves
``pending`` → ``relayed`` (the producer wrote the event, same transaction) or
``pending`` → ``failed`` (it cannot be relayed; ``last_error`` says why and the row
stays until an operator retries it).

``watcher_positions`` keeps each polling watcher's position, and ``watcher_rows`` the
digest and values of the watched columns per row, both updated in the transaction
that writes the watcher's outbox rows: a restart neither replays nor skips.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, JSONDoc, UTCDateTime, utcnow


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    RELAYED = "relayed"
    FAILED = "failed"


class OutboxEntry(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_outbox_event_id"),
        Index("ix_outbox_state_id", "state", "id"),
        Index("ix_outbox_relayed_at", "relayed_at"),
    )

    #: Write order; the producer relays oldest first.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(40))
    #: Tenant id or name, as the watch's ``recipients`` gave it; resolved when relayed.
    tenant_ref: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: What wrote the row: ``orm:<Model>`` or ``poll:<watcher name>``.
    source: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default=OutboxState.PENDING)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    relayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WatcherPosition(Base):
    __tablename__ = "watcher_positions"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: ``{"cursor": <tagged value>, "key": <tagged value>}``; see :mod:`app.changefeed.values`.
    position: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WatcherRow(Base):
    __tablename__ = "watcher_rows"

    watcher: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The row's key as canonical JSON, so ``1`` and ``"1"`` stay distinct.
    row_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    #: The watched columns' last seen values: the "old" side of the next change.
    watched: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
