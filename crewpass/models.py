"""The CrewPass tables: partners, scopes, vessels, fleet membership, crew, consent, documents.

They live in their own metadata (:class:`CrewPassBase`), as an application's models
do; :func:`create_tables` creates them (the demo and the tests; a real deployment
would give them their own migrations). Columns that must never leave CrewPass (the
provider behind a check or a certificate, internal notes, document numbers) sit
beside the shared ones: the payloads are built from allow-lists
(:mod:`crewpass.payloads`), not from rows.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

from sqlalchemy import Date, DateTime, Engine, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id(prefix: str) -> str:
    """``crw_3f9c…``: a prefix and 12 random hex characters."""
    return f"{prefix}_{secrets.token_hex(6)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class CrewPassBase(DeclarativeBase):
    pass


class Partner(CrewPassBase):
    """A fleet owner that receives webhooks; ``tenant`` is its Hookline tenant (id or name)."""

    __tablename__ = "cp_partners"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("prt"))
    name: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str] = mapped_column(String(200), unique=True)


class PartnerScope(CrewPassBase):
    """A scope a partner holds (``crew:documents:read``, …)."""

    __tablename__ = "cp_partner_scopes"

    partner_id: Mapped[str] = mapped_column(ForeignKey("cp_partners.id", ondelete="CASCADE"),
                                            primary_key=True)
    scope: Mapped[str] = mapped_column(String(80), primary_key=True)


class Vessel(CrewPassBase):
    """A vessel of a partner's fleet."""

    __tablename__ = "cp_vessels"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ves"))
    partner_id: Mapped[str] = mapped_column(ForeignKey("cp_partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class FleetMembership(CrewPassBase):
    """A crew member serving on a vessel; ``left_at`` set once they leave it."""

    __tablename__ = "cp_fleet_memberships"
    __table_args__ = (Index("ix_cp_fleet_memberships_crew", "crew_id", "vessel_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mbr"))
    crew_id: Mapped[str] = mapped_column(ForeignKey("cp_crew.id"))
    vessel_id: Mapped[str] = mapped_column(ForeignKey("cp_vessels.id"))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class CrewMember(CrewPassBase):
    """A seafarer: profile, identity verification, background check and compliance."""

    __tablename__ = "cp_crew"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("crw"))
    given_name: Mapped[str] = mapped_column(String(120))
    family_name: Mapped[str] = mapped_column(String(120))
    rank: Mapped[str | None] = mapped_column(String(80), default=None)
    nationality: Mapped[str | None] = mapped_column(String(2), default=None)
    phone: Mapped[str | None] = mapped_column(String(40), default=None)
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    date_of_birth: Mapped[date | None] = mapped_column(Date, default=None)
    verification_status: Mapped[str] = mapped_column(String(20), default="unverified")
    background_check_status: Mapped[str | None] = mapped_column(String(20), default=None)
    #: Who runs the background check. Internal: never in a payload.
    background_check_provider: Mapped[str | None] = mapped_column(String(120), default=None)
    compliance_status: Mapped[str] = mapped_column(String(20), default="no_role")
    internal_notes: Mapped[str | None] = mapped_column(Text, default=None)


class Consent(CrewPassBase):
    """A crew member's consent to share their status with one partner (absent means no)."""

    __tablename__ = "cp_consents"

    crew_id: Mapped[str] = mapped_column(ForeignKey("cp_crew.id"), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("cp_partners.id"), primary_key=True)
    granted: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Document(CrewPassBase):
    """A certificate or document of a crew member and where its verification stands."""

    __tablename__ = "cp_documents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("doc"))
    crew_id: Mapped[str] = mapped_column(ForeignKey("cp_crew.id"), index=True)
    document_type: Mapped[str] = mapped_column(String(40))
    #: The certificate number. Personal data: never in a payload.
    number: Mapped[str | None] = mapped_column(String(80), default=None)
    verification_status: Mapped[str] = mapped_column(String(20), default="pending")
    expires_on: Mapped[date | None] = mapped_column(Date, default=None)
    #: The provider that verified it. Internal: never in a payload.
    verified_by: Mapped[str | None] = mapped_column(String(120), default=None)


class WithheldNotice(CrewPassBase):
    """An event a partner did not get, and the gate that withheld it (fleet, scope or consent).

    Written in the transaction of the change, beside the outbox rows of the partners
    who do get it: "why did partner X not hear about this?" has an answer.
    """

    __tablename__ = "cp_withheld"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(128))
    crew_id: Mapped[str] = mapped_column(String(40), index=True)
    partner_id: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def create_tables(engine: Engine) -> None:
    """Create the CrewPass tables that do not exist yet."""
    CrewPassBase.metadata.create_all(engine)
