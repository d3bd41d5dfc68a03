"""Change capture: watched ORM changes write outbox rows in their own transaction, and nothing else does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.changefeed import ChangeFeed, OutboxEntry, OutboxState
from app.db import transaction
from app.errors import InvalidPayload, InvalidWatch, UnknownEventType
from app.models import Tenant
from tests.changefeed_domain import (
    CrewMember,
    PartnerLink,
    create_domain_tables,
    linked_partners,
    watch_crew_status,
)
from tests.unit.conftest import Harness


class Domain:
    """A harness with the stand-in domain's tables and a change feed installed on its sessions."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        create_domain_tables(h.engine)
        self.feed = ChangeFeed(h.catalogue, max_payload_bytes=h.settings.max_payload_bytes)
        self.feed.install(h.sessions)

    def crew(self, crew_id: str = "c1", *partners: str, **values: Any) -> None:
        with transaction(self.h.sessions) as session:
            session.add(CrewMember(id=crew_id, name=values.pop("name", "Ada"), **values))
            session.flush()
            session.add_all(PartnerLink(crew_id=crew_id, partner=p) for p in partners)

    def change(self, crew_id: str = "c1", **values: Any) -> None:
        with transaction(self.h.sessions) as session:
            crew = session.get(CrewMember, crew_id)
            assert crew is not None
            for name, value in values.items():
                setattr(crew, name, value)

    def outbox(self) -> list[OutboxEntry]:
        with transaction(self.h.sessions) as session:
            return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))


@pytest.fixture
def domain(harness: Harness) -> Domain:
    return Domain(harness)


class TestWatchedChanges:
    """A watched attribute's change writes one outbox row per recipient, with the allow-listed payload."""

    def test_a_status_change_emits_its_event_with_old_and_new(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme", email="ada@example.test")
        domain.change("c1", status="verified")

        [row] = domain.outbox()
        assert row.event_id.startswith("evt_")
        assert (row.tenant_ref, row.event_type, row.source, row.state) == (
            "acme", "crew.status.changed", "orm:CrewMember", OutboxState.PENDING)
        assert row.payload == {"crew_id": "c1", "name": "Ada",
                               "changes": {"status": {"old": "pending", "new": "verified"}}}
        assert "ada@example.test" not in str(row.payload)
        assert row.relayed_at is None and row.last_error is None

    def test_each_linked_partner_gets_its_own_row_and_event_id(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme", "globex", "acme")
        domain.change("c1", status="verified")
        rows = domain.outbox()
        assert [r.tenant_ref for r in rows] == ["acme", "globex"]
        assert len({r.event_id for r in rows}) == 2
        assert rows[0].payload == rows[1].payload

    def test_no_linked_partner_means_no_event(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1")
        domain.change("c1", status="verified")
        assert domain.outbox() == []

    def test_two_flushes_in_one_transaction_are_two_changes(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme")
        with transaction(domain.h.sessions) as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.status = "checking"
            session.flush()
            crew.status = "verified"
        assert [r.payload["changes"]["status"] for r in domain.outbox()] == [
            {"old": "pending", "new": "checking"}, {"old": "checking", "new": "verified"}]

    def test_the_old_value_is_known_even_when_the_object_was_expired(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme")
        expiring = sessionmaker(domain.h.engine)  # expire_on_commit=True, as most applications use
        domain.feed.install(expiring)
        with expiring() as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            session.commit()  # every attribute is now expired
            crew.status = "verified"
            session.commit()
        [row] = domain.outbox()
        assert row.payload["changes"] == {"status": {"old": "pending", "new": "verified"}}
        assert row.payload["name"] == "Ada"

    def test_recipients_see_rows_flushed_in_the_same_transaction(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, on=["insert"], attributes=["status"],
                          event_type="crew.profile.updated", fields={"crew_id": "id"},
                          recipients=linked_partners)
        with transaction(domain.h.sessions) as session:
            session.add(CrewMember(id="c9", name="Grace"))
            session.add(PartnerLink(crew_id="c9", partner="acme"))
        [row] = domain.outbox()
        assert (row.tenant_ref, row.payload) == ("acme", {"crew_id": "c9", "changes": {
            "status": {"old": None, "new": "pending"}}})

    def test_deletes_carry_the_last_values(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, on=["delete"], attributes=["status"],
                          event_type="crew.profile.updated", fields={"crew_id": "id", "name": "name"},
                          recipients=["acme"])
        domain.crew("c1", status="verified")
        expiring = sessionmaker(domain.h.engine)
        domain.feed.install(expiring)
        with expiring() as session:
            crew = session.get(CrewMember, "c1")
            session.commit()  # expired: the values must be loaded before the row goes
            session.delete(crew)
            session.commit()
        [row] = domain.outbox()
        assert row.payload == {"crew_id": "c1", "name": "Ada",
                               "changes": {"status": {"old": "verified", "new": None}}}

    def test_values_are_made_json_ready(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, attributes=["rating"], event_type="crew.profile.updated",
                          fields=["seen_at"], recipients=["acme"])
        domain.crew("c1", seen_at=datetime(2030, 1, 2, 3, 4, 5))
        domain.change("c1", rating=Decimal("4.50"))
        [row] = domain.outbox()
        assert row.payload == {"seen_at": "2030-01-02T03:04:05Z",
                               "changes": {"rating": {"old": None, "new": "4.50"}}}

    def test_a_condition_and_a_payload_builder(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, attributes=["status"], event_type="crew.document.processed",
                          recipients=["acme"], fields={"crew_id": "id"},
                          when=lambda c: c.new("status") == "verified",
                          payload=lambda c: {"crew_id": c.values["crew_id"], "status": c.new("status")})
        domain.crew("c1")
        domain.change("c1", status="rejected")
        domain.change("c1", status="verified")
        assert [r.payload for r in domain.outbox()] == [{"crew_id": "c1", "status": "verified"}]

    def test_an_event_type_per_operation(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, attributes=["status"], recipients=["acme"],
                          event_type={"insert": "crew.profile.updated", "update": "crew.status.changed"})
        domain.crew("c1")
        domain.change("c1", status="verified")
        assert [r.event_type for r in domain.outbox()] == ["crew.profile.updated", "crew.status.changed"]


class TestNothingElse:
    """Rolled-back, unwatched and no-op changes write nothing."""

    def test_a_rolled_back_change_emits_nothing(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme")
        with domain.h.sessions() as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.status = "verified"
            session.flush()  # the outbox row is written…
            session.rollback()  # …and rolled back with the change
        with pytest.raises(RuntimeError), transaction(domain.h.sessions) as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.status = "rejected"
            session.flush()
            raise RuntimeError("the application fails after the flush")
        assert domain.outbox() == []

    def test_an_unwatched_column_emits_nothing(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme")
        domain.change("c1", email="new@example.test", name="Ada L.")
        assert domain.outbox() == []

    def test_setting_the_same_value_emits_nothing(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme", status="verified")
        domain.change("c1", status="verified")
        assert domain.outbox() == []

    def test_undeclared_operations_emit_nothing(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)  # updates only
        domain.crew("c1", "acme")
        with transaction(domain.h.sessions) as session:
            session.delete(session.scalars(select(PartnerLink)).one())
            session.flush()
            session.delete(session.get(CrewMember, "c1"))
        assert domain.outbox() == []

    def test_bulk_statements_bypass_capture(self, domain: Domain) -> None:
        """Documented limit: only the unit of work is seen; bulk SQL needs a polling watcher."""
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme")
        with transaction(domain.h.sessions) as session:
            session.execute(update(CrewMember).values(status="verified"))
        assert domain.outbox() == []

    def test_sessions_without_the_feed_are_not_watched(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.crew("c1", "acme")
        other = sessionmaker(domain.h.engine)
        with other() as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.status = "verified"
            session.commit()
        domain.feed.uninstall(domain.h.sessions)
        domain.change("c1", status="rejected")
        assert domain.outbox() == []


class TestPayloadProblems:
    """A payload that cannot be JSON fails the write; one that is too large is kept as a failed row."""

    def test_a_value_with_no_json_form_fails_the_transaction(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, attributes=["status"], event_type="crew.status.changed",
                          recipients=["acme"], payload=lambda c: {"raw": b"\x00"})
        domain.crew("c1")
        with pytest.raises(InvalidPayload, match="orm:CrewMember"):
            domain.change("c1", status="verified")
        with transaction(domain.h.sessions) as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None and crew.status == "pending"
        assert domain.outbox() == []

    def test_an_oversized_payload_commits_the_change_and_a_failed_row(self, domain: Domain) -> None:
        domain.feed.watch(CrewMember, attributes=["status"], event_type="crew.status.changed",
                          recipients=["acme"], payload=lambda c: {"blob": "x" * 300_000})
        domain.crew("c1")
        domain.change("c1", status="verified")
        [row] = domain.outbox()
        assert row.state == OutboxState.FAILED
        assert row.last_error is not None and "over the limit" in row.last_error

    def test_an_error_in_recipients_fails_the_transaction(self, domain: Domain) -> None:
        def broken(_session: Session, _crew: Any) -> list[str]:
            raise LookupError("partner service down")

        watch_crew_status(domain.feed, recipients=broken)
        domain.crew("c1")
        with pytest.raises(LookupError):
            domain.change("c1", status="verified")
        assert domain.outbox() == []


class TestRegistration:
    """Watches are checked against the catalogue and the mapping when declared."""

    def test_an_unknown_event_type_is_refused(self, domain: Domain) -> None:
        with pytest.raises(UnknownEventType):
            domain.feed.watch(CrewMember, attributes=["status"], event_type="crew.status.exploded",
                              recipients=["acme"])
        assert domain.feed.watches == ()

    @pytest.mark.parametrize(("model", "options", "message"), [
        (CrewMember, {"attributes": ["nope"]}, "not a column"),
        (CrewMember, {"attributes": ["status"], "fields": ["nope"]}, "no attribute"),
        (Tenant.__table__, {"attributes": ["name"]}, "not a mapped ORM class"),
    ])
    def test_a_watch_the_model_cannot_satisfy_is_refused(self, domain: Domain, model: Any,
                                                         options: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidWatch, match=message):
            domain.feed.watch(model, event_type="crew.status.changed", recipients=["acme"], **options)

    def test_installing_twice_captures_once(self, domain: Domain) -> None:
        watch_crew_status(domain.feed)
        domain.feed.install(domain.h.sessions)
        domain.crew("c1", "acme")
        domain.change("c1", status="verified")
        assert len(domain.outbox()) == 1

    def test_subclass_instances_are_watched_by_their_base(self, make_harness: Callable[..., Harness]
                                                          ) -> None:
        domain = Domain(make_harness())
        watch_crew_status(domain.feed)
        assert domain.feed._watches_for(CrewMember) == list(domain.feed.watches)
        assert domain.feed._watches_for(PartnerLink) == []
