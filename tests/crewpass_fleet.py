"""A CrewPass fleet for the tests: partners, vessels, crew, consents and documents, written through
sessions with :func:`crewpass.feed.watch_crewpass` installed, and readers of what the feed wrote.

Shared by the unit tests (in-memory SQLite) and the integration tests (PostgreSQL). Every
partner owns one vessel, ``ves_<tenant>``; building the world only inserts rows, which no
CrewPass watch emits on, so the outbox starts empty.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.changefeed import ChangeFeed, OutboxEntry
from crewpass.feed import watch_crewpass
from crewpass.models import (
    Consent,
    CrewMember,
    Document,
    FleetMembership,
    Partner,
    PartnerScope,
    Vessel,
    WithheldNotice,
)
from crewpass.vocabulary import SCOPES

#: Internal values: written beside watched changes, they must never be in a payload.
PROVIDER = "Sterling Background Ltd"
NOTES = "ops: do not renew before the audit"
NUMBER = "CoC-0044-1987"
VERIFIER = "DocuCheck Maritime"

#: A crew member as first written: every change in the tests starts from these values.
CREW = {"given_name": "Ada", "family_name": "Lovelace", "rank": "Second Officer", "nationality": "GB",
        "phone": "+44 7700 900123", "email": "ada@crew.example", "verification_status": "pending",
        "background_check_status": "in-progress", "compliance_status": "compliant"}
DOCUMENT_TYPE = "stcw_basic_safety"
EXPIRES_ON = date(2031, 5, 1)


def document_payload(crew_id: str, document_id: str, old: str, new: str) -> dict[str, Any]:
    """The data of ``crew.document.processed``/``updated`` for a document from :meth:`Fleet.document`."""
    return {"crew_id": crew_id, "document_id": document_id, "document_type": DOCUMENT_TYPE,
            "verification_status": new, "previous_status": old, "expires_on": EXPIRES_ON.isoformat()}


class Fleet:
    """The CrewPass world on one database, written through *sessions*, which *feed* is installed on."""

    def __init__(self, sessions: sessionmaker[Session], feed: ChangeFeed) -> None:
        self.feed = feed
        self.watches = watch_crewpass(feed)
        self.sessions = sessions
        feed.install(sessions)

    # -- building the world (inserts: no watch emits on insert) --------------------------
    def partner(self, tenant: str, scopes: tuple[str, ...] = SCOPES) -> str:
        """A partner whose Hookline tenant is *tenant*, holding *scopes*, with one vessel; its id."""
        with self.sessions.begin() as session:
            partner = Partner(name=tenant.title(), tenant=tenant)
            session.add(partner)
            session.flush()
            session.add_all(PartnerScope(partner_id=partner.id, scope=s) for s in scopes)
            session.add(Vessel(id=f"ves_{tenant}", partner_id=partner.id, name=f"MV {tenant}"))
            return partner.id

    def crew(self, *, serves: tuple[str, ...] = (), consents: tuple[str, ...] | None = None,
             **values: Any) -> str:
        """A crew member serving on the vessel of each partner in *serves*, consenting to *consents*
        (default: the same partners); its id."""
        with self.sessions.begin() as session:
            crew = CrewMember(**{**CREW, **values})
            session.add(crew)
            session.flush()
            for tenant in serves:
                session.add(FleetMembership(crew_id=crew.id, vessel_id=f"ves_{tenant}"))
            for tenant in serves if consents is None else consents:
                session.add(Consent(crew_id=crew.id, partner_id=self.partner_id(session, tenant)))
            return crew.id

    def document(self, crew_id: str, status: str = "pending", **values: Any) -> str:
        with self.sessions.begin() as session:
            document = Document(crew_id=crew_id, document_type=DOCUMENT_TYPE, number=NUMBER,
                                verification_status=status, expires_on=EXPIRES_ON, **values)
            session.add(document)
            session.flush()
            return document.id

    @staticmethod
    def partner_id(session: Session, tenant: str) -> str:
        return session.scalars(select(Partner.id).where(Partner.tenant == tenant)).one()

    # -- changing it ---------------------------------------------------------------------
    def change_crew(self, crew_id: str, **values: Any) -> None:
        with self.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            for name, value in values.items():
                setattr(crew, name, value)

    def change_document(self, document_id: str, **values: Any) -> None:
        with self.sessions.begin() as session:
            document = session.get(Document, document_id)
            assert document is not None
            for name, value in values.items():
                setattr(document, name, value)

    def leave_fleet(self, crew_id: str, tenant: str) -> None:
        with self.sessions.begin() as session:
            membership = session.scalars(select(FleetMembership).where(
                FleetMembership.crew_id == crew_id, FleetMembership.vessel_id == f"ves_{tenant}")).one()
            membership.left_at = datetime(2030, 1, 1, tzinfo=UTC)

    def withdraw_consent(self, crew_id: str, tenant: str) -> None:
        with self.sessions.begin() as session:
            consent = session.get(Consent, (crew_id, self.partner_id(session, tenant)))
            assert consent is not None
            consent.granted = False

    # -- what the feed wrote --------------------------------------------------------------
    def outbox(self) -> list[OutboxEntry]:
        with self.sessions() as session:
            return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))

    def sent(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(tenant, event type, payload)`` of every outbox row, in write order."""
        return [(row.tenant_ref, row.event_type, row.payload) for row in self.outbox()]

    def withheld(self) -> list[tuple[str, str, str, str]]:
        """``(event type, crew id, partner id, reason)`` of every withheld notice, in write order."""
        with self.sessions() as session:
            return [(n.event_type, n.crew_id, n.partner_id, n.reason)
                    for n in session.scalars(select(WithheldNotice).order_by(WithheldNotice.id))]
