"""A small stand-in domain for the change-feed tests: crew members, partner links, a legacy table.

Its own metadata (not Hookline's ``Base``), created by the tests next to Hookline's
tables, as an application's models would be. ``recipients`` shows the gating the
change feed is built for: a crew member's change goes to every partner linked to it
(several, one or none).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, DateTime, Engine, ForeignKey, Integer, MetaData, Numeric, String, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from app.changefeed import ChangeFeed


class DomainBase(DeclarativeBase):
    pass


class CrewMember(DomainBase):
    __tablename__ = "cf_crew"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(40), default="pending")
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    rating: Mapped[Decimal | None] = mapped_column(Numeric(4, 2), default=None)
    seen_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class PartnerLink(DomainBase):
    """Which partners (Hookline tenants, by name) may hear about a crew member."""

    __tablename__ = "cf_partner_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    crew_id: Mapped[str] = mapped_column(ForeignKey("cf_crew.id"))
    partner: Mapped[str] = mapped_column(String(200))


def linked_partners(session: Session, crew: CrewMember) -> list[str]:
    """The partners linked to *crew*, in link order (the gating rule)."""
    return list(session.scalars(select(PartnerLink.partner).where(PartnerLink.crew_id == crew.id)
                                .order_by(PartnerLink.id)))


def watch_crew_status(feed: ChangeFeed,
                      recipients: Callable[[Session, Any], Any] = linked_partners) -> None:
    """``crew.status.changed`` on a status change, with the crew id and name; email never leaves."""
    feed.watch(CrewMember, attributes=["status"], event_type="crew.status.changed",
               fields={"crew_id": "id", "name": "name"}, recipients=recipients)


legacy_metadata = MetaData()

#: A table another system writes; Hookline polls it.
legacy_crew = Table(
    "cf_legacy_crew", legacy_metadata,
    Column("id", Integer, primary_key=True),
    Column("partner", String(200), nullable=False),
    Column("status", String(40), nullable=False),
    Column("phone", String(40)),
    Column("version", Integer, nullable=False, default=1),
)

#: An append-only audit table another system writes.
legacy_audit = Table(
    "cf_legacy_audit", legacy_metadata,
    Column("seq", Integer, primary_key=True),
    Column("partner", String(200), nullable=False),
    Column("action", String(80), nullable=False),
    Column("at", DateTime),
)


def create_domain_tables(engine: Engine) -> None:
    DomainBase.metadata.create_all(engine)
    legacy_metadata.create_all(engine)


def drop_domain_tables(engine: Engine) -> None:
    legacy_metadata.drop_all(engine)
    DomainBase.metadata.drop_all(engine)
