"""A fleet that changes at a steady pace: the demo's source of crew changes.

:func:`populate` creates a small CrewPass world for a set of partners (vessels, crew
on them, consents, documents); :class:`FleetSimulator` then makes one realistic
change per :meth:`~FleetSimulator.step`, each in its own transaction, through an
ordinary ORM session: whatever change feed is installed on that session factory
turns them into events. Most steps are changes CrewPass publishes (a certificate
verified, a compliance flip, a background check advancing, a profile edit); some are
changes it must not publish (internal notes, the provider behind a check, a new
document upload) or changes that only move the gate (consent withdrawn or given
back, a crew member changing vessels).

Seeded (``random.Random(seed)``): the same seed makes the same changes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crewpass.models import (
    Consent,
    CrewMember,
    Document,
    FleetMembership,
    Partner,
    PartnerScope,
    Vessel,
    new_id,
    utcnow,
)
from crewpass.vocabulary import OVERALL_STATUSES, SCOPES


@dataclass(frozen=True, slots=True)
class PartnerSpec:
    """A partner to create: its Hookline tenant, the scopes it holds, its vessels."""

    key: str
    name: str
    scopes: tuple[str, ...]
    vessels: tuple[str, ...]


#: The demo's partners: one holds every scope, two hold only some (scope gating shows).
DEMO_PARTNERS = (
    PartnerSpec("northwind", "Northwind Shipping", SCOPES, ("MV Aurora", "MV Boreas")),
    PartnerSpec("blue-anchor", "Blue Anchor Lines", ("crew:compliance:read", "crew:status:subscribe"),
                ("MV Cassiopeia",)),
    PartnerSpec("harbor", "Harbor Crewing", ("crew:documents:read", "crew:profile:read",
                                             "crew:status:subscribe"), ("MV Delphine",)),
)

GIVEN_NAMES = ("Ada", "Bjorn", "Chiara", "Dmitri", "Esi", "Farid", "Grace", "Hiro", "Ines", "Jonas",
               "Kalani", "Lena", "Mateo", "Noor", "Oskar", "Priya")
FAMILY_NAMES = ("Lindqvist", "Okafor", "Santos", "Ivanova", "Mensah", "Haddad", "Kim", "Tanaka",
                "Moreau", "Berg", "Kealoha", "Fischer", "Rojas", "Aziz", "Nilsen", "Rao")
RANKS = ("Master", "Chief Officer", "Second Officer", "Third Officer", "Chief Engineer",
         "Second Engineer", "Bosun", "Able Seaman", "Oiler", "Cook")
NATIONALITIES = ("NO", "PH", "PT", "UA", "GH", "IN", "FR", "DE", "GB", "JP")
DOCUMENT_TYPES = ("STCW_BST", "MEDICAL_ENG1", "PASSPORT", "SEAMANS_BOOK", "COC", "GMDSS")
#: Verification providers: recorded internally, never published.
PROVIDERS = ("Veritas Screening Ltd", "Anchor Background Services", "DocuCheck Maritime")

#: What each step is, and how often it happens (relative weights).
STEP_WEIGHTS: Mapping[str, float] = {
    "document_verified": 3, "document_expired": 1, "document_uploaded": 1,
    "compliance": 2, "background_check": 2, "verification": 1, "profile": 2,
    "internal_note": 1, "consent": 0.6, "transfer": 0.6,
}
#: Steps CrewPass publishes an event for (the others only change internal data or the gate).
PUBLISHING_STEPS = frozenset({"document_verified", "document_expired", "compliance",
                              "background_check", "verification", "profile"})

_BACKGROUND_NEXT: Mapping[str | None, tuple[str, ...]] = {
    None: ("pending",), "pending": ("awaiting",), "awaiting": ("in-progress",),
    "in-progress": ("completed", "completed", "completed", "declined"),
    "completed": ("expired",), "declined": ("pending",), "expired": ("pending",),
}
_VERIFICATION_NEXT: Mapping[str, tuple[str, ...]] = {
    "unverified": ("pending",), "pending": ("verified", "verified", "failed"),
    "verified": ("pending",), "failed": ("pending",),
}


def next_background_check(status: str | None, rng: random.Random) -> str:
    """The background-check status that follows *status* (a check's life cycle)."""
    return rng.choice(_BACKGROUND_NEXT.get(status, ("pending",)))


def next_verification(status: str, rng: random.Random) -> str:
    return rng.choice(_VERIFICATION_NEXT.get(status, ("pending",)))


def next_compliance(status: str, rng: random.Random) -> str:
    return rng.choice([s for s in OVERALL_STATUSES if s != status])


@dataclass(frozen=True, slots=True)
class World:
    """What :func:`populate` created: partner ids by key, vessel ids, crew ids."""

    partners: Mapping[str, str]
    vessels: Sequence[str]
    crew: Sequence[str]


@dataclass(frozen=True, slots=True)
class Step:
    """One change the simulator made."""

    kind: str
    crew_id: str
    summary: str

    @property
    def publishes(self) -> bool:
        return self.kind in PUBLISHING_STEPS


def populate(sessions: sessionmaker[Session], tenants: Mapping[str, str], *,
             partners: Sequence[PartnerSpec] = DEMO_PARTNERS, crew_size: int = 12,
             seed: int = 7) -> World:
    """Create *partners* (``tenants`` maps each key to its Hookline tenant), vessels and crew.

    Each crew member serves on one vessel (every fourth also on a second partner's
    vessel, and every fourth, from the second, formerly served on another partner's
    vessel), consents to every partner whose fleet they serve or served on, except that
    every fifth has withdrawn consent from their first partner; each has a verified and
    a pending document. So all three gates withhold something from the start.
    """
    rng = random.Random(seed)
    with sessions.begin() as session:
        partner_ids: dict[str, str] = {}
        vessel_owner: dict[str, str] = {}
        for spec in partners:
            partner = Partner(id=new_id("prt"), name=spec.name, tenant=tenants[spec.key])
            session.add(partner)
            session.flush()
            partner_ids[spec.key] = partner.id
            session.add_all(PartnerScope(partner_id=partner.id, scope=s) for s in spec.scopes)
            for vessel_name in spec.vessels:
                vessel = Vessel(id=new_id("ves"), partner_id=partner.id, name=vessel_name)
                session.add(vessel)
                vessel_owner[vessel.id] = partner.id
        session.flush()
        vessels = list(vessel_owner)
        crew_ids: list[str] = []
        for i in range(crew_size):
            crew = CrewMember(id=new_id("crw"), given_name=rng.choice(GIVEN_NAMES),
                              family_name=rng.choice(FAMILY_NAMES), rank=rng.choice(RANKS),
                              nationality=rng.choice(NATIONALITIES),
                              phone=f"+47 4{rng.randrange(10_000_000):07d}",
                              email=f"crew{i}@example.org", date_of_birth=date(1970 + i, 1 + i % 12, 1),
                              verification_status="verified", compliance_status="compliant",
                              background_check_status="completed",
                              background_check_provider=rng.choice(PROVIDERS))
            session.add(crew)
            session.flush()
            crew_ids.append(crew.id)
            serves = [vessels[i % len(vessels)]]
            if i % 4 == 0:
                serves.append(vessels[(i + 2) % len(vessels)])
            owners = list(dict.fromkeys(vessel_owner[v] for v in serves))
            session.add_all(FleetMembership(crew_id=crew.id, vessel_id=v) for v in serves)
            if i % 4 == 1:
                # Served on another partner's vessel before, with consent: now off that fleet.
                former = next(v for v in vessels if vessel_owner[v] not in owners)
                session.add(FleetMembership(crew_id=crew.id, vessel_id=former,
                                            joined_at=utcnow() - timedelta(days=400),
                                            left_at=utcnow() - timedelta(days=30)))
                owners.append(vessel_owner[former])
                serves.append(former)
            session.add_all(Consent(crew_id=crew.id, partner_id=p, granted=not (i % 5 == 4 and n == 0))
                            for n, p in enumerate(owners))
            session.add_all([
                Document(crew_id=crew.id, document_type=rng.choice(DOCUMENT_TYPES), number=_number(rng),
                         verification_status="verified", verified_by=rng.choice(PROVIDERS),
                         expires_on=date.today() + timedelta(days=rng.randrange(30, 900))),
                Document(crew_id=crew.id, document_type=rng.choice(DOCUMENT_TYPES), number=_number(rng),
                         verification_status="pending",
                         expires_on=date.today() + timedelta(days=rng.randrange(30, 900))),
            ])
    return World(partners=partner_ids, vessels=vessels, crew=crew_ids)


def _number(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGH')}{rng.randrange(10**7):07d}"


class FleetSimulator:
    """Makes one change to *world* per :meth:`step`, each in its own transaction.

    Each ``_<kind>`` method makes its change and returns the kind it actually made
    (a document step with no document to act on uploads one instead) and a summary.
    """

    def __init__(self, sessions: sessionmaker[Session], world: World, *, seed: int = 11) -> None:
        self.sessions = sessions
        self.world = world
        self.rng = random.Random(seed)
        self._kinds = list(STEP_WEIGHTS)
        self._weights = [STEP_WEIGHTS[k] for k in self._kinds]

    def step(self) -> Step:
        """Make one change, chosen at random by :data:`STEP_WEIGHTS`, and commit it."""
        kind = self.rng.choices(self._kinds, self._weights)[0]
        crew_id = self.rng.choice(list(self.world.crew))
        with self.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None, f"crew member {crew_id} is gone"
            done, summary = getattr(self, f"_{kind}")(session, crew)
        return Step(done, crew_id, summary)

    # -- changes CrewPass publishes --------------------------------------------------
    def _document_verified(self, session: Session, crew: CrewMember) -> tuple[str, str]:
        document = self._document(session, crew, "pending")
        if document is None:
            return self._document_uploaded(session, crew)
        verdict = "verified" if self.rng.random() < 0.85 else "rejected"
        document.verification_status = verdict
        document.verified_by = self.rng.choice(PROVIDERS)
        return "document_verified", f"{document.document_type} of {crew.given_name} {verdict}"

    def _document_expired(self, session: Session, crew: CrewMember) -> tuple[str, str]:
        document = self._document(session, crew, "verified")
        if document is None:
            return self._document_uploaded(session, crew)
        document.verification_status = "expired"
        return "document_expired", f"{document.document_type} of {crew.given_name} expired"

    def _compliance(self, _session: Session, crew: CrewMember) -> tuple[str, str]:
        crew.compliance_status = next_compliance(crew.compliance_status, self.rng)
        return "compliance", f"{crew.given_name} is now {crew.compliance_status}"

    def _background_check(self, _session: Session, crew: CrewMember) -> tuple[str, str]:
        crew.background_check_status = next_background_check(crew.background_check_status, self.rng)
        if crew.background_check_status == "pending":
            crew.background_check_provider = self.rng.choice(PROVIDERS)
        return "background_check", (f"background check of {crew.given_name}: "
                                    f"{crew.background_check_status}")

    def _verification(self, _session: Session, crew: CrewMember) -> tuple[str, str]:
        crew.verification_status = next_verification(crew.verification_status, self.rng)
        return "verification", f"identity of {crew.given_name}: {crew.verification_status}"

    def _profile(self, _session: Session, crew: CrewMember) -> tuple[str, str]:
        field = self.rng.choice(("rank", "phone", "nationality"))
        if field == "rank":
            crew.rank = self.rng.choice([r for r in RANKS if r != crew.rank])
        elif field == "phone":
            crew.phone = f"+47 9{self.rng.randrange(10_000_000):07d}"
        else:
            crew.nationality = self.rng.choice([n for n in NATIONALITIES if n != crew.nationality])
        return "profile", f"{crew.given_name} updated their {field}"

    # -- changes it must not publish, and changes that move the gate ------------------
    def _document_uploaded(self, session: Session, crew: CrewMember) -> tuple[str, str]:
        document = Document(crew_id=crew.id, document_type=self.rng.choice(DOCUMENT_TYPES),
                            number=_number(self.rng), verification_status="pending",
                            expires_on=date.today() + timedelta(days=self.rng.randrange(30, 900)))
        session.add(document)
        return "document_uploaded", f"{crew.given_name} uploaded a {document.document_type}"

    def _internal_note(self, _session: Session, crew: CrewMember) -> tuple[str, str]:
        crew.internal_notes = f"reviewed by ops #{self.rng.randrange(1000)}"
        crew.background_check_provider = self.rng.choice(PROVIDERS)
        return "internal_note", f"internal note on {crew.given_name}"

    def _consent(self, session: Session, crew: CrewMember) -> tuple[str, str]:
        consents = list(session.scalars(select(Consent).where(Consent.crew_id == crew.id)
                                        .order_by(Consent.partner_id)))
        if not consents:
            return "consent", f"{crew.given_name} has no partner to consent to"
        consent = self.rng.choice(consents)
        consent.granted = not consent.granted
        return "consent", f"{crew.given_name} {'gave' if consent.granted else 'withdrew'} consent"

    def _transfer(self, session: Session, crew: CrewMember) -> tuple[str, str]:
        current = list(session.scalars(select(FleetMembership).where(
            FleetMembership.crew_id == crew.id, FleetMembership.left_at.is_(None))))
        serving = {m.vessel_id for m in current}
        choices = [v for v in self.world.vessels if v not in serving]
        if not current or not choices:
            return "transfer", f"{crew.given_name} stays aboard"
        leaving = self.rng.choice(current)
        leaving.left_at = utcnow()
        joining = self.rng.choice(choices)
        session.add(FleetMembership(crew_id=crew.id, vessel_id=joining))
        owner = session.scalar(select(Vessel.partner_id).where(Vessel.id == joining))
        if owner is not None and session.get(Consent, (crew.id, owner)) is None:
            session.add(Consent(crew_id=crew.id, partner_id=owner, granted=True))
        return "transfer", f"{crew.given_name} moved vessels"

    def _document(self, session: Session, crew: CrewMember, status: str) -> Document | None:
        return session.scalars(select(Document).where(Document.crew_id == crew.id,
                                                      Document.verification_status == status)
                               .order_by(Document.id).limit(1)).first()
