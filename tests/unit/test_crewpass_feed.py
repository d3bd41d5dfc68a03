"""The CrewPass watches on a real change feed: which changes write which outbox rows, and for whom.

An in-memory SQLite database holds Hookline's tables and the CrewPass tables; a
:class:`~app.changefeed.ChangeFeed` with :func:`crewpass.feed.watch_crewpass` is
installed on the application's own session factory. Every assertion reads what the
feed wrote: the outbox rows (``app.changefeed.OutboxEntry``) and the ``cp_withheld`` log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

import app.changefeed.models  # noqa: F401  (registers the outbox tables on Hookline's metadata)
from app.catalogue import default_catalogue
from app.changefeed import ChangeFeed, OutboxEntry, OutboxState
from app.models import Base
from crewpass.models import CrewMember, Document, FleetMembership, Vessel, create_tables
from crewpass.vocabulary import (
    COMPLIANCE_CHANGED_EVENT,
    DOCUMENT_PROCESSED_EVENT,
    DOCUMENT_UPDATED_EVENT,
    EVENT_TYPES,
    PROFILE_UPDATED_EVENT,
    STATUS_CHANGED_EVENT,
)
from tests.crewpass_fleet import CREW, NOTES, NUMBER, PROVIDER, VERIFIER, Fleet, document_payload


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA foreign_keys=ON"))
    Base.metadata.create_all(engine)
    create_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fleet(engine: Engine) -> Fleet:
    """A fleet written through the application's own session factory (expire on commit, as usual)."""
    return Fleet(sessionmaker(engine), ChangeFeed(default_catalogue(), max_payload_bytes=256 * 1024))


@pytest.fixture
def acme(fleet: Fleet) -> str:
    """A partner holding every scope."""
    return fleet.partner("acme")


class TestTheWatches:
    """``watch_crewpass`` declares the five catalogue events on the feed it is given."""

    def test_five_watches_one_per_event_type(self, fleet: Fleet) -> None:
        assert [w.event_types["update"] for w in fleet.watches] == list(EVENT_TYPES)
        assert fleet.feed.watches == tuple(fleet.watches)

    def test_every_watch_is_on_updates_only(self, fleet: Fleet) -> None:
        assert all(set(w.event_types) == {"update"} for w in fleet.watches)

    def test_building_the_world_writes_nothing(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.document(crew_id)
        assert fleet.outbox() == [] and fleet.withheld() == []


class TestEachEvent:
    """Each of the five events fires on exactly its change, with exactly its payload."""

    @pytest.mark.parametrize(("old", "new"), [
        ("pending", "verified"), ("pending", "rejected"), ("processing", "verified"),
        ("processing", "rejected"),
    ])
    def test_a_document_leaving_processing_is_processed(self, fleet: Fleet, acme: str, old: str,
                                                        new: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id, old)
        fleet.change_document(document_id, verification_status=new)
        assert fleet.sent() == [("acme", DOCUMENT_PROCESSED_EVENT,
                                 document_payload(crew_id, document_id, old, new))]

    @pytest.mark.parametrize(("old", "new"), [
        ("verified", "expired"), ("verified", "revoked"), ("pending", "processing"),
        ("rejected", "verified"), ("expired", "pending"),
    ])
    def test_any_other_document_status_change_is_updated(self, fleet: Fleet, acme: str, old: str,
                                                         new: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id, old)
        fleet.change_document(document_id, verification_status=new)
        assert fleet.sent() == [("acme", DOCUMENT_UPDATED_EVENT,
                                 document_payload(crew_id, document_id, old, new))]

    def test_pending_to_verified_then_verified_to_expired(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id)
        fleet.change_document(document_id, verification_status="verified")
        fleet.change_document(document_id, verification_status="expired")
        assert [(event_type, payload["previous_status"], payload["verification_status"])
                for _, event_type, payload in fleet.sent()] == [
            (DOCUMENT_PROCESSED_EVENT, "pending", "verified"),
            (DOCUMENT_UPDATED_EVENT, "verified", "expired")]

    def test_a_compliance_change_is_compliance_changed(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, compliance_status="at_risk")
        assert fleet.sent() == [("acme", COMPLIANCE_CHANGED_EVENT, {
            "crew_id": crew_id, "overall_status": "at_risk", "previous_status": "compliant"})]

    def test_an_identity_verification_change_is_status_changed(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, verification_status="verified")
        assert fleet.sent() == [("acme", STATUS_CHANGED_EVENT, {
            "crew_id": crew_id, "verification_status": "verified", "background_check_status": "in-progress",
            "previous": {"verification_status": "pending"}})]

    def test_a_background_check_change_is_status_changed(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, background_check_status="completed")
        assert fleet.sent() == [("acme", STATUS_CHANGED_EVENT, {
            "crew_id": crew_id, "verification_status": "pending", "background_check_status": "completed",
            "previous": {"background_check_status": "in-progress"}})]

    def test_both_statuses_in_one_transaction_are_one_status_changed(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, verification_status="verified", background_check_status="completed")
        assert fleet.sent() == [("acme", STATUS_CHANGED_EVENT, {
            "crew_id": crew_id, "verification_status": "verified", "background_check_status": "completed",
            "previous": {"verification_status": "pending", "background_check_status": "in-progress"}})]

    def test_a_profile_change_is_profile_updated(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, rank="Chief Officer")
        assert fleet.sent() == [("acme", PROFILE_UPDATED_EVENT, {
            "crew_id": crew_id, "updated_fields": ["rank"],
            "profile": {"given_name": "Ada", "family_name": "Lovelace", "rank": "Chief Officer",
                        "nationality": "GB"}})]

    def test_contact_details_are_named_in_profile_updated_but_never_sent(self, fleet: Fleet,
                                                                         acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, phone="+44 7700 900999", email="ada.l@crew.example")
        [(tenant, event_type, payload)] = fleet.sent()
        assert (tenant, event_type) == ("acme", PROFILE_UPDATED_EVENT)
        assert payload == {"crew_id": crew_id, "updated_fields": ["email", "phone"],
                           "profile": {"given_name": "Ada", "family_name": "Lovelace",
                                       "rank": "Second Officer", "nationality": "GB"}}
        serialised = json.dumps(payload)
        for value in ("+44 7700 900999", "ada.l@crew.example", CREW["phone"], CREW["email"]):
            assert value not in serialised

    def test_every_row_is_pending_with_its_own_event_id_and_source(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id)
        fleet.change_crew(crew_id, compliance_status="at_risk", verification_status="verified",
                          given_name="Augusta")
        fleet.change_document(document_id, verification_status="verified")
        rows = fleet.outbox()
        assert sorted(r.event_type for r in rows) == sorted([
            COMPLIANCE_CHANGED_EVENT, STATUS_CHANGED_EVENT, PROFILE_UPDATED_EVENT, DOCUMENT_PROCESSED_EVENT])
        assert {r.state for r in rows} == {OutboxState.PENDING}
        assert len({r.event_id for r in rows}) == 4
        assert {r.event_type: r.source for r in rows} == {
            COMPLIANCE_CHANGED_EVENT: "orm:CrewMember", STATUS_CHANGED_EVENT: "orm:CrewMember",
            PROFILE_UPDATED_EVENT: "orm:CrewMember", DOCUMENT_PROCESSED_EVENT: "orm:Document"}

    def test_setting_a_watched_value_it_already_has_writes_nothing(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id, "verified")
        fleet.change_crew(crew_id, compliance_status="compliant", rank="Second Officer")
        fleet.change_document(document_id, verification_status="verified")
        assert fleet.outbox() == [] and fleet.withheld() == []


class TestNothingElse:
    """Unwatched columns, fleet and consent changes, and rolled-back changes write nothing."""

    @pytest.mark.parametrize(("column", "value"), [
        ("internal_notes", NOTES), ("background_check_provider", PROVIDER),
        ("date_of_birth", date(1987, 4, 1)),
    ])
    def test_an_unwatched_crew_column_writes_nothing(self, fleet: Fleet, acme: str, column: str,
                                                     value: Any) -> None:
        fleet.partner("globex", scopes=())  # would be logged as withheld if anything were captured
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.change_crew(crew_id, **{column: value})
        assert fleet.outbox() == [] and fleet.withheld() == []

    @pytest.mark.parametrize(("column", "value"), [
        ("verified_by", VERIFIER), ("number", "CoC-9999-0001"), ("expires_on", date(2035, 1, 1)),
        ("document_type", "coc"),
    ])
    def test_an_unwatched_document_column_writes_nothing(self, fleet: Fleet, acme: str, column: str,
                                                         value: Any) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id)
        fleet.change_document(document_id, **{column: value})
        assert fleet.outbox() == [] and fleet.withheld() == []

    def test_fleet_and_consent_changes_write_nothing(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        fleet.leave_fleet(crew_id, "acme")
        fleet.withdraw_consent(crew_id, "acme")
        assert fleet.outbox() == [] and fleet.withheld() == []

    def test_a_rolled_back_change_writes_nothing(self, fleet: Fleet, acme: str) -> None:
        fleet.partner("globex", scopes=())  # its withheld notice would roll back with the rest
        crew_id = fleet.crew(serves=("acme", "globex"))
        document_id = fleet.document(crew_id)
        with fleet.sessions() as session:
            crew = session.get(CrewMember, crew_id)
            document = session.get(Document, document_id)
            assert crew is not None and document is not None
            crew.verification_status, crew.rank = "verified", "Master"
            document.verification_status = "verified"
            session.flush()  # the outbox rows and withheld notices are written here…
            assert len(session.scalars(select(OutboxEntry)).all()) == 3
            session.rollback()  # …and rolled back with the change
        with pytest.raises(RuntimeError), fleet.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            crew.compliance_status = "non_compliant"
            session.flush()
            raise RuntimeError("the application fails after the flush")
        assert fleet.outbox() == [] and fleet.withheld() == []
        with fleet.sessions() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            assert (crew.verification_status, crew.compliance_status) == ("pending", "compliant")


class TestInternalValuesNeverLeave:
    """Internal values written beside watched changes, in the same transaction, are in no payload."""

    def test_providers_notes_and_numbers_written_with_status_changes(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",))
        document_id = fleet.document(crew_id)
        with fleet.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            document = session.get(Document, document_id)
            assert crew is not None and document is not None
            crew.background_check_provider = PROVIDER
            crew.background_check_status = "completed"
            crew.internal_notes = NOTES
            crew.compliance_status = "non_compliant"
            crew.given_name = "Augusta"
            crew.email = "augusta@crew.example"
            document.verified_by = VERIFIER
            document.number = "CoC-7777-2030"
            document.verification_status = "verified"
        rows = fleet.outbox()
        assert sorted(r.event_type for r in rows) == sorted([
            STATUS_CHANGED_EVENT, COMPLIANCE_CHANGED_EVENT, PROFILE_UPDATED_EVENT, DOCUMENT_PROCESSED_EVENT])
        serialised = json.dumps([r.payload for r in rows])
        for value in (PROVIDER, NOTES, VERIFIER, "CoC-7777-2030", NUMBER, "augusta@crew.example",
                      CREW["email"], CREW["phone"]):
            assert value not in serialised, value
        for key in ("background_check_provider", "internal_notes", "verified_by", "number", "date_of_birth"):
            assert f'"{key}"' not in serialised, key


class TestGating:
    """Only partners the gate lets through get a row; each one refused gets a withheld notice."""

    def test_a_partner_whose_crew_member_left_its_fleet_is_withheld_as_not_on_fleet(
            self, fleet: Fleet, acme: str) -> None:
        globex = fleet.partner("globex")
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.leave_fleet(crew_id, "globex")
        fleet.change_crew(crew_id, verification_status="verified")
        assert [(tenant, event_type) for tenant, event_type, _ in fleet.sent()] == [
            ("acme", STATUS_CHANGED_EVENT)]
        assert fleet.withheld() == [(STATUS_CHANGED_EVENT, crew_id, globex, "not_on_fleet")]

    def test_a_partner_missing_the_scope_is_withheld_as_missing_scope(self, fleet: Fleet, acme: str) -> None:
        globex = fleet.partner("globex", scopes=("crew:documents:read", "crew:profile:read"))
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.change_crew(crew_id, compliance_status="at_risk")
        assert [(tenant, event_type) for tenant, event_type, _ in fleet.sent()] == [
            ("acme", COMPLIANCE_CHANGED_EVENT)]
        assert fleet.withheld() == [(COMPLIANCE_CHANGED_EVENT, crew_id, globex, "missing_scope")]

    def test_a_partner_holding_the_scope_of_one_event_but_not_another(self, fleet: Fleet) -> None:
        docs_only = fleet.partner("docs-only", scopes=("crew:documents:read",))
        crew_id = fleet.crew(serves=("docs-only",))
        document_id = fleet.document(crew_id)
        fleet.change_document(document_id, verification_status="verified")
        fleet.change_crew(crew_id, rank="Master")
        assert [(tenant, event_type) for tenant, event_type, _ in fleet.sent()] == [
            ("docs-only", DOCUMENT_PROCESSED_EVENT)]
        assert fleet.withheld() == [(PROFILE_UPDATED_EVENT, crew_id, docs_only, "missing_scope")]

    def test_withdrawn_consent_is_withheld_as_no_consent(self, fleet: Fleet, acme: str) -> None:
        globex = fleet.partner("globex")
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.withdraw_consent(crew_id, "globex")
        document_id = fleet.document(crew_id)
        fleet.change_document(document_id, verification_status="rejected")
        assert [(tenant, event_type) for tenant, event_type, _ in fleet.sent()] == [
            ("acme", DOCUMENT_PROCESSED_EVENT)]
        assert fleet.withheld() == [(DOCUMENT_PROCESSED_EVENT, crew_id, globex, "no_consent")]

    def test_consent_never_given_is_no_consent(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(serves=("acme",), consents=())
        fleet.change_crew(crew_id, compliance_status="at_risk")
        assert fleet.outbox() == []
        assert fleet.withheld() == [(COMPLIANCE_CHANGED_EVENT, crew_id, acme, "no_consent")]

    def test_fleet_is_the_reason_even_when_scope_and_consent_are_missing_too(self, fleet: Fleet,
                                                                              acme: str) -> None:
        globex = fleet.partner("globex", scopes=())
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.withdraw_consent(crew_id, "globex")
        fleet.leave_fleet(crew_id, "globex")
        fleet.change_crew(crew_id, compliance_status="at_risk")
        assert fleet.withheld() == [(COMPLIANCE_CHANGED_EVENT, crew_id, globex, "not_on_fleet")]

    def test_a_crew_member_on_two_partners_fleets_yields_one_row_per_partner(self, fleet: Fleet,
                                                                             acme: str) -> None:
        fleet.partner("globex")
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.change_crew(crew_id, background_check_status="completed")
        rows = fleet.outbox()
        assert sorted(r.tenant_ref for r in rows) == ["acme", "globex"]
        assert {r.event_type for r in rows} == {STATUS_CHANGED_EVENT}
        assert len({r.event_id for r in rows}) == 2
        assert rows[0].payload == rows[1].payload
        assert fleet.withheld() == []

    def test_three_partners_two_allowed_one_withheld(self, fleet: Fleet, acme: str) -> None:
        fleet.partner("globex")
        initech = fleet.partner("initech")
        crew_id = fleet.crew(serves=("acme", "globex", "initech"))
        fleet.withdraw_consent(crew_id, "initech")
        fleet.change_crew(crew_id, family_name="Byron")
        assert sorted(tenant for tenant, _, _ in fleet.sent()) == ["acme", "globex"]
        assert fleet.withheld() == [(PROFILE_UPDATED_EVENT, crew_id, initech, "no_consent")]

    @pytest.mark.parametrize("left", ["ves_acme", "ves_acme_2"])
    def test_leaving_one_vessel_of_a_fleet_while_serving_on_another_keeps_the_crew_member_on_it(
            self, fleet: Fleet, acme: str, left: str) -> None:
        # either vessel may be the one left: the current membership must count whichever row comes last
        crew_id = fleet.crew(serves=("acme",))
        with fleet.sessions.begin() as session:
            session.add(Vessel(id="ves_acme_2", partner_id=acme, name="MV acme two"))
            session.flush()
            session.add(FleetMembership(crew_id=crew_id, vessel_id="ves_acme_2"))
        with fleet.sessions.begin() as session:
            membership = session.scalars(select(FleetMembership).where(
                FleetMembership.crew_id == crew_id, FleetMembership.vessel_id == left)).one()
            membership.left_at = datetime(2030, 1, 1, tzinfo=UTC)
        fleet.change_crew(crew_id, compliance_status="at_risk")
        assert [tenant for tenant, _, _ in fleet.sent()] == ["acme"]
        assert fleet.withheld() == []

    def test_a_partner_with_no_relation_to_the_crew_member_is_neither_sent_nor_logged(
            self, fleet: Fleet, acme: str) -> None:
        fleet.partner("globex")
        crew_id = fleet.crew(serves=("acme",))
        fleet.change_crew(crew_id, compliance_status="at_risk")
        assert [tenant for tenant, _, _ in fleet.sent()] == ["acme"]
        assert fleet.withheld() == []

    def test_consent_alone_without_a_fleet_is_not_on_fleet(self, fleet: Fleet, acme: str) -> None:
        crew_id = fleet.crew(consents=("acme",))
        fleet.change_crew(crew_id, verification_status="verified")
        assert fleet.outbox() == []
        assert fleet.withheld() == [(STATUS_CHANGED_EVENT, crew_id, acme, "not_on_fleet")]

    def test_a_withheld_notice_is_written_for_each_event_of_a_transaction(self, fleet: Fleet,
                                                                          acme: str) -> None:
        globex = fleet.partner("globex")
        crew_id = fleet.crew(serves=("acme", "globex"))
        fleet.leave_fleet(crew_id, "globex")
        fleet.change_crew(crew_id, compliance_status="at_risk", rank="Master")
        assert sorted(fleet.withheld()) == sorted([
            (COMPLIANCE_CHANGED_EVENT, crew_id, globex, "not_on_fleet"),
            (PROFILE_UPDATED_EVENT, crew_id, globex, "not_on_fleet")])
        assert sorted(event_type for _, event_type, _ in fleet.sent()) == sorted([
            COMPLIANCE_CHANGED_EVENT, PROFILE_UPDATED_EVENT])

