"""Who hears about a crew member: the gate applied to the partners the database relates to them.

The I/O side of :mod:`crewpass.gating`. It runs inside the writing transaction, as
the change feed's ``recipients`` callback: it reads the crew member's fleet
memberships, consents and the partners' scopes as they are in that transaction, and
writes a :class:`~crewpass.models.WithheldNotice` for each partner the gate refuses,
in the same transaction as the outbox rows of those it lets through.

The partners considered are those related to the crew member: every partner whose
fleet they serve or served on, and every partner they gave or withdrew consent to.
A partner with no relation at all is not considered (and not logged as withheld).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from crewpass.gating import Standing, decide_all
from crewpass.models import Consent, Document, FleetMembership, Partner, PartnerScope, Vessel, WithheldNotice
from crewpass.vocabulary import EVENT_SCOPES


def standings(session: Session, crew_id: str) -> list[Standing]:
    """The gate's facts for every partner related to *crew_id*, ordered by partner id."""
    on_fleet: dict[str, bool] = {}
    memberships = session.execute(
        select(Vessel.partner_id, FleetMembership.left_at)
        .join(Vessel, Vessel.id == FleetMembership.vessel_id)
        .where(FleetMembership.crew_id == crew_id)).all()
    for partner_id, left_at in memberships:
        on_fleet[partner_id] = on_fleet.get(partner_id, False) or left_at is None
    consents = {partner_id: bool(granted) for partner_id, granted in session.execute(
        select(Consent.partner_id, Consent.granted).where(Consent.crew_id == crew_id))}
    related = sorted(set(on_fleet) | set(consents))
    if not related:
        return []
    tenants: dict[str, str] = {}  # in partner id order
    scopes: dict[str, set[str]] = {}
    for partner_id, tenant, scope in session.execute(
            select(Partner.id, Partner.tenant, PartnerScope.scope)
            .outerjoin(PartnerScope, PartnerScope.partner_id == Partner.id)
            .where(Partner.id.in_(related)).order_by(Partner.id)):
        tenants[partner_id] = tenant
        held = scopes.setdefault(partner_id, set())
        if scope is not None:  # a partner holding no scope at all
            held.add(scope)
    return [Standing(partner_id=partner_id, tenant=tenant, on_fleet=on_fleet.get(partner_id, False),
                     scopes=frozenset(scopes[partner_id]), consent=consents.get(partner_id, False))
            for partner_id, tenant in tenants.items()]


def crew_id_of(subject: Any) -> str:
    """The crew member a watched object is about."""
    return str(subject.crew_id if isinstance(subject, Document) else subject.id)


def recipients_for(event_type: str) -> Callable[[Session, Any], list[str]]:
    """The change feed's ``recipients`` callback for *event_type*: the tenants the gate lets through."""
    scope = EVENT_SCOPES[event_type]

    def recipients(session: Session, subject: Any) -> list[str]:
        crew_id = crew_id_of(subject)
        decisions = decide_all(standings(session, crew_id), scope)
        refused = [d for d in decisions if not d.allowed]
        if refused:
            session.connection().execute(insert(WithheldNotice), [
                {"event_type": event_type, "crew_id": crew_id, "partner_id": d.partner_id,
                 "reason": str(d.withheld)} for d in refused])
        return [d.tenant for d in decisions if d.allowed]

    return recipients
