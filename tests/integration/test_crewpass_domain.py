"""CrewPass end to end: domain changes reach exactly the partners the gate lets through.

CrewPass rows are written in this process through sessions with the CrewPass watches
installed (:func:`crewpass.feed.watch_crewpass`), on real PostgreSQL; a real
``hookline producer`` relays the outbox and a real worker delivers to the loopback
receiver, where each partner's endpoint checks every CrewPass signature.

Absence is shown without sleeping: every outbox row of a transaction commits with it,
so once a change committed later has been delivered, an outbox holding no other row
means nothing else was captured and nothing else can ever be delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from app.changefeed import ChangeFeed
from app.receiver import Receiver
from crewpass.models import CrewMember, Document, create_tables
from crewpass.vocabulary import (
    COMPLIANCE_CHANGED_EVENT,
    DOCUMENT_PROCESSED_EVENT,
    DOCUMENT_UPDATED_EVENT,
    EVENT_SCOPES,
    PROFILE_UPDATED_EVENT,
    SCOPES,
    STATUS_CHANGED_EVENT,
)
from tests.crewpass_fleet import CREW, NOTES, NUMBER, PROVIDER, VERIFIER, Fleet, document_payload
from tests.integration.conftest import Stack
from tests.integration.producers import Producers, outbox_states, partner, producers_for
from tests.integration.producers import delivered as accepted_envelopes
from tests.support import wait_until

pytestmark = pytest.mark.integration

#: Children before parents, for the reader; CASCADE would sort it out anyway.
CREWPASS_TABLES = ("cp_withheld", "cp_documents", "cp_consents", "cp_fleet_memberships", "cp_crew",
                   "cp_vessels", "cp_partner_scopes", "cp_partners")
#: What must never reach a partner, written in the same transactions as watched changes.
INTERNAL_VALUES = (PROVIDER, NOTES, VERIFIER, NUMBER, "CoC-7777-2030", CREW["phone"], CREW["email"],
                   "augusta@crew.example", "1987-04-01")
INTERNAL_KEYS = ("background_check_provider", "internal_notes", "verified_by", "number", "date_of_birth",
                 "phone", "email")


@pytest.fixture(autouse=True)
def _crewpass_tables(stack: Stack) -> Iterator[None]:
    """The CrewPass tables exist and, like the outbox, are empty (Hookline's are emptied by conftest);
    emptied again afterwards, so no partner of these tests is left for a later test to meet."""

    tables = ", ".join(("outbox", *CREWPASS_TABLES))

    def empty() -> None:
        with stack.hookline.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))

    create_tables(stack.hookline.engine)
    empty()
    yield
    empty()


@pytest.fixture
def producers(stack: Stack) -> Iterator[Producers]:
    yield from producers_for(stack)


@pytest.fixture
def fleet(stack: Stack) -> Fleet:
    """CrewPass's own session factory (expire on commit) with the five watches installed."""
    return Fleet(sessionmaker(stack.hookline.engine), ChangeFeed.for_hookline(stack.hookline))


@dataclass(frozen=True)
class Member:
    """A CrewPass partner that is also a Hookline tenant with an endpoint on the receiver."""

    name: str
    tenant_id: str
    partner_id: str

    @property
    def path(self) -> str:
        return f"/{self.name}"


@pytest.fixture
def member(stack: Stack, receiver: Receiver, fleet: Fleet) -> Callable[..., Member]:
    def make(name: str, scopes: tuple[str, ...] = SCOPES) -> Member:
        tenant_id = partner(stack, receiver, name)  # subscribed to "*", signatures checked
        return Member(name, tenant_id, fleet.partner(name, scopes))

    return make


@pytest.fixture
def running(stack: Stack, producers: Producers) -> None:
    """A worker and a producer, both ready."""
    stack.worker()
    producers.start()


def delivered(receiver: Receiver, to: Member) -> list[dict[str, Any]]:
    """The envelopes *to* accepted, in arrival order."""
    return accepted_envelopes(receiver, to.path)


def settled(stack: Stack, receiver: Receiver, expected: dict[Member, int]) -> None:
    """Wait until each member accepted (at least) its expected number of events, the outbox is all
    relayed and every delivery has its outcome recorded; then there must be exactly that many."""
    total = sum(expected.values())
    wait_until(lambda: all(len(receiver.accepted(m.path)) >= n for m, n in expected.items()),
               what=f"{total} deliveries at {', '.join(m.name for m in expected)}")
    wait_until(lambda: set(outbox_states(stack)) == {"relayed"} and stack.sql(
        "SELECT count(*) FROM deliveries WHERE state NOT IN ('succeeded', 'dead')") == [(0,)],
               what="the outbox relayed and every delivery's outcome recorded")
    assert [tuple(r) for r in stack.sql("SELECT state, count(*) FROM deliveries GROUP BY state")] == [
        ("succeeded", total)]


def outbox_rows(fleet: Fleet) -> list[tuple[str, str]]:
    """``(tenant ref, event type)`` of every outbox row, in write order."""
    return [(tenant, event_type) for tenant, event_type, _payload in fleet.sent()]


def assert_nothing_internal_left(stack: Stack, receiver: Receiver) -> None:
    """No body at any partner (nor any stored event or outbox row) holds an internal value or key."""
    bodies = [r.body.decode() for r in receiver.received]
    stored = [str(r[0]) for r in stack.sql("SELECT payload::text FROM events UNION ALL "
                                           "SELECT payload::text FROM outbox")]
    for text_ in (*bodies, *stored):
        for value in INTERNAL_VALUES:
            assert value not in text_, (value, text_)
        for key in INTERNAL_KEYS:
            assert f'"{key}":' not in text_, (key, text_)


@pytest.mark.usefixtures("running")
class TestEachEvent:
    """Each of the five watched changes reaches the partner as exactly its event, once."""

    def test_the_five_changes_yield_the_five_events(self, stack: Stack, receiver: Receiver, fleet: Fleet,
                                                     member: Callable[..., Member]) -> None:
        acme = member("acme")
        crew_id = fleet.crew(serves=("acme",))
        processing, verified = fleet.document(crew_id, "pending"), fleet.document(crew_id, "verified")

        fleet.change_document(processing, verification_status="verified")
        fleet.change_document(verified, verification_status="expired")
        fleet.change_crew(crew_id, compliance_status="at_risk")
        fleet.change_crew(crew_id, background_check_status="completed")
        fleet.change_crew(crew_id, rank="Chief Officer")

        settled(stack, receiver, {acme: 5})
        got = delivered(receiver, acme)
        assert sorted(e["event_type"] for e in got) == sorted([
            DOCUMENT_PROCESSED_EVENT, DOCUMENT_UPDATED_EVENT, COMPLIANCE_CHANGED_EVENT, STATUS_CHANGED_EVENT,
            PROFILE_UPDATED_EVENT])
        assert {e["event_type"]: e["data"] for e in got} == {
            DOCUMENT_PROCESSED_EVENT: document_payload(crew_id, processing, "pending", "verified"),
            DOCUMENT_UPDATED_EVENT: document_payload(crew_id, verified, "verified", "expired"),
            COMPLIANCE_CHANGED_EVENT: {"crew_id": crew_id, "overall_status": "at_risk",
                                       "previous_status": "compliant"},
            STATUS_CHANGED_EVENT: {"crew_id": crew_id, "verification_status": "pending",
                                   "background_check_status": "completed",
                                   "previous": {"background_check_status": "in-progress"}},
            PROFILE_UPDATED_EVENT: {"crew_id": crew_id, "updated_fields": ["rank"],
                                    "profile": {"given_name": "Ada", "family_name": "Lovelace",
                                                "rank": "Chief Officer", "nationality": "GB"}},
        }
        outbox_ids = {r[0] for r in stack.sql("SELECT event_id FROM outbox")}
        assert {e["event_id"] for e in got} == outbox_ids  # the id fixed when the change committed
        assert {e["partner_id"] for e in got} == {acme.tenant_id}
        assert len(receiver.for_path(acme.path)) == 5 and receiver.duplicates == 0
        assert all(r.verified for r in receiver.received)
        assert outbox_states(stack) == {"relayed": 5}
        assert fleet.withheld() == []
        assert_nothing_internal_left(stack, receiver)


@pytest.mark.usefixtures("running")
class TestNothingElse:
    """Rolled-back changes and changes to unwatched columns reach nobody."""

    def test_rollbacks_and_unwatched_columns_yield_nothing(
            self, stack: Stack, receiver: Receiver, fleet: Fleet, member: Callable[..., Member]) -> None:
        acme = member("acme")
        member("globex", scopes=())  # a gated partner: its withheld notice would show a capture too
        crew_id = fleet.crew(serves=("acme", "globex"))
        document_id = fleet.document(crew_id)

        with fleet.sessions() as session:  # flushed (outbox rows written), then rolled back
            crew, document = session.get(CrewMember, crew_id), session.get(Document, document_id)
            assert crew is not None and document is not None
            crew.verification_status, crew.rank = "verified", "Master"
            document.verification_status = "verified"
            session.flush()
            session.rollback()
        with pytest.raises(RuntimeError), fleet.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            crew.compliance_status = "non_compliant"
            session.flush()
            raise RuntimeError("the application fails after the flush")
        fleet.change_crew(crew_id, internal_notes=NOTES, background_check_provider=PROVIDER,
                          date_of_birth=date(1987, 4, 1))
        fleet.change_document(document_id, verified_by=VERIFIER, number="CoC-7777-2030")

        fleet.change_crew(crew_id, compliance_status="at_risk")  # the marker, committed last

        settled(stack, receiver, {acme: 1})
        [only] = delivered(receiver, acme)
        assert (only["event_type"], only["data"]) == (COMPLIANCE_CHANGED_EVENT, {
            "crew_id": crew_id, "overall_status": "at_risk", "previous_status": "compliant"})
        # everything above committed (or rolled back) before the marker: only its row was ever written
        assert outbox_rows(fleet) == [("acme", COMPLIANCE_CHANGED_EVENT)]
        assert outbox_states(stack) == {"relayed": 1}
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 1
        assert [w[3] for w in fleet.withheld()] == ["missing_scope"]  # the marker's, for globex
        assert len(receiver.received) == 1
        assert_nothing_internal_left(stack, receiver)


GATES = {
    # reason: (the gated partner's scopes, how the gate is closed, the change, its event type)
    "not_on_fleet": (SCOPES, lambda fleet, crew_id: fleet.leave_fleet(crew_id, "gated"),
                     {"verification_status": "verified"}, STATUS_CHANGED_EVENT),
    "missing_scope": (tuple(s for s in SCOPES if s != EVENT_SCOPES[COMPLIANCE_CHANGED_EVENT]),
                      lambda fleet, crew_id: None, {"compliance_status": "non_compliant"},
                      COMPLIANCE_CHANGED_EVENT),
    "no_consent": (SCOPES, lambda fleet, crew_id: fleet.withdraw_consent(crew_id, "gated"),
                   {"family_name": "Byron"}, PROFILE_UPDATED_EVENT),
}


@pytest.mark.usefixtures("running")
class TestGating:
    """A change the gate withholds from one partner reaches the control partner, and only it."""

    @pytest.mark.parametrize("reason", sorted(GATES))
    def test_a_gated_partner_gets_nothing_and_the_reason_is_logged(
            self, stack: Stack, receiver: Receiver, fleet: Fleet, member: Callable[..., Member],
            reason: str) -> None:
        scopes, close_gate, change, event_type = GATES[reason]
        control = member("control")
        gated = member("gated", scopes=scopes)
        crew_id = fleet.crew(serves=("control", "gated"))
        close_gate(fleet, crew_id)

        fleet.change_crew(crew_id, **change)

        settled(stack, receiver, {control: 1})
        [got] = delivered(receiver, control)
        assert (got["event_type"], got["partner_id"], got["data"]["crew_id"]) == (
            event_type, control.tenant_id, crew_id)
        # the gated partner's row would have committed with the control's: there is none
        assert outbox_rows(fleet) == [("control", event_type)]
        assert stack.sql("SELECT count(*) FROM events WHERE tenant_id = :t", t=gated.tenant_id) == [(0,)]
        assert receiver.for_path(gated.path) == []
        assert fleet.withheld() == [(event_type, crew_id, gated.partner_id, reason)]


@pytest.mark.usefixtures("running")
class TestInternalValues:
    """Provider names, internal notes, verifiers, numbers and contact details never reach a partner."""

    def test_internal_values_written_with_watched_changes_reach_no_partner(
            self, stack: Stack, receiver: Receiver, fleet: Fleet, member: Callable[..., Member]) -> None:
        acme, globex = member("acme"), member("globex")
        crew_id = fleet.crew(serves=("acme", "globex"))
        document_id = fleet.document(crew_id)

        with fleet.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            crew.background_check_provider = PROVIDER
            crew.background_check_status = "completed"
            crew.internal_notes = NOTES
            crew.compliance_status = "non_compliant"
        with fleet.sessions.begin() as session:
            document = session.get(Document, document_id)
            assert document is not None
            document.verified_by = VERIFIER
            document.number = "CoC-7777-2030"
            document.verification_status = "verified"
        with fleet.sessions.begin() as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            crew.given_name, crew.email, crew.internal_notes = "Augusta", "augusta@crew.example", NOTES + "!"
            crew.date_of_birth = date(1987, 4, 1)

        settled(stack, receiver, {acme: 4, globex: 4})
        for partner_ in (acme, globex):
            assert sorted(e["event_type"] for e in delivered(receiver, partner_)) == sorted([
                STATUS_CHANGED_EVENT, COMPLIANCE_CHANGED_EVENT, DOCUMENT_PROCESSED_EVENT,
                PROFILE_UPDATED_EVENT])
        [profile] = [e["data"] for e in delivered(receiver, acme) if e["event_type"] == PROFILE_UPDATED_EVENT]
        assert profile["updated_fields"] == ["email", "given_name"]  # named, never sent
        assert all(r.verified for r in receiver.received) and receiver.duplicates == 0
        assert_nothing_internal_left(stack, receiver)
