"""The relay: outbox rows become events under their own ids, in one transaction with the row's state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError

import app.changefeed.relay as relay_module
from app.catalogue import default_catalogue
from app.changefeed import ChangeFeed, OutboxEntry, OutboxState, Relay
from app.db import transaction
from app.models import Delivery, Event, utcnow
from tests.changefeed_domain import CrewMember, create_domain_tables, watch_crew_status
from tests.unit.conftest import Harness


class Outbox:
    """A harness with two partners, an endpoint each, the stand-in domain watched, and a relay."""

    def __init__(self, h: Harness, *, batch: int = 100) -> None:
        self.h = h
        create_domain_tables(h.engine)
        self.acme, self.globex = h.tenant("acme"), h.tenant("globex")
        self.acme_endpoint = h.endpoint(self.acme)
        self.globex_endpoint = h.endpoint(self.globex, events=["crew.document.*"])
        self.feed = ChangeFeed(h.catalogue, max_payload_bytes=h.settings.max_payload_bytes)
        self.feed.install(h.sessions)
        self.relay = self.relay_with(batch=batch)
        self._crew = 0

    def relay_with(self, **options: Any) -> Relay:
        defaults: dict[str, Any] = {"max_payload_bytes": self.h.settings.max_payload_bytes, "batch": 100,
                                    "catalogue": self.h.catalogue}
        defaults.update(options)
        catalogue = defaults.pop("catalogue")
        return Relay(self.h.sessions, self.h.dispatcher, catalogue, **defaults)

    def changes(self, *partners_per_change: list[str]) -> None:
        """One new crew member per entry, inserted then verified, heard by the partners listed."""
        for partners in partners_per_change:
            n, self._crew = self._crew, self._crew + 1
            with transaction(self.h.sessions) as session:
                session.add(CrewMember(id=f"c{n}", name=f"Crew {n}"))
            with transaction(self.h.sessions) as session:
                crew = session.get(CrewMember, f"c{n}")
                assert crew is not None
                crew.status = "verified"
                crew.email = ",".join(partners)  # read by the recipients below

    def rows(self) -> list[OutboxEntry]:
        with transaction(self.h.sessions) as session:
            return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))

    def events(self) -> list[Event]:
        with transaction(self.h.sessions) as session:
            return list(session.scalars(select(Event).order_by(Event.created_at, Event.id)))

    def set_rows(self, **values: Any) -> None:
        with transaction(self.h.sessions) as session:
            session.execute(update(OutboxEntry).values(**values))


def partners_in_email(_session: Any, crew: CrewMember) -> list[str]:
    return [p for p in (crew.email or "").split(",") if p]


@pytest.fixture
def outbox(harness: Harness) -> Outbox:
    box = Outbox(harness)
    watch_crew_status(box.feed, recipients=partners_in_email)
    return box


class TestRelay:
    """Each pending row becomes its event, fanned out and enqueued; the row says relayed."""

    def test_a_row_becomes_its_event_under_the_same_id(self, outbox: Outbox) -> None:
        outbox.changes(["acme"])
        [row] = outbox.rows()

        report = outbox.relay.relay_batch()

        [event] = outbox.events()
        assert report.relayed == [row.event_id] == [event.id]
        assert (event.tenant_id, event.event_type, event.payload) == (
            outbox.acme.id, "crew.status.changed", row.payload)
        assert event.occurred_at == row.occurred_at
        [relayed] = outbox.rows()
        assert relayed.state == OutboxState.RELAYED and relayed.relayed_at is not None
        [delivery_id] = outbox.h.sender.delivery_ids_sent()
        assert outbox.h.delivery(delivery_id).event_id == event.id
        assert report.deliveries == [(delivery_id, outbox.acme_endpoint.id)]

    def test_a_relayed_row_is_never_relayed_again(self, outbox: Outbox) -> None:
        outbox.changes(["acme"], ["acme"])
        assert len(outbox.relay.relay_batch().relayed) == 2
        again = outbox.relay.relay_batch()
        assert (again.claimed, again.relayed) == (0, [])
        assert len(outbox.events()) == 2
        assert len(outbox.h.sender.delivery_ids_sent()) == 2

    def test_a_row_whose_event_exists_is_marked_relayed_without_a_second_event(self, outbox: Outbox
                                                                                 ) -> None:
        outbox.changes(["acme"])
        outbox.relay.relay_batch()
        outbox.set_rows(state=OutboxState.PENDING, relayed_at=None)  # e.g. restored from a backup
        report = outbox.relay.relay_batch()
        assert (report.relayed, report.already) == ([], [outbox.rows()[0].event_id])
        assert len(outbox.events()) == 1
        assert outbox.h.count(Delivery) == 1
        assert outbox.rows()[0].state == OutboxState.RELAYED

    def test_fan_out_follows_each_tenants_subscriptions(self, outbox: Outbox) -> None:
        outbox.changes(["acme", "globex"])  # globex subscribes to crew.document.* only
        report = outbox.relay.relay_batch()
        assert len(report.relayed) == 2
        assert [endpoint for _, endpoint in report.deliveries] == [outbox.acme_endpoint.id]

    def test_batches_take_the_oldest_rows_first(self, harness: Harness) -> None:
        box = Outbox(harness)
        watch_crew_status(box.feed, recipients=partners_in_email)
        box.changes(*[["acme"]] * 5)
        relay = box.relay_with(batch=2)
        ids = [r.event_id for r in box.rows()]
        assert [relay.relay_batch().relayed for _ in range(4)] == [ids[0:2], ids[2:4], ids[4:], []]

    def test_a_broker_outage_parks_the_deliveries(self, outbox: Outbox) -> None:
        outbox.changes(["acme"])
        outbox.h.sender.down = True
        report = outbox.relay.relay_batch()
        [delivery_id] = report.parked
        assert outbox.h.delivery(delivery_id).queued_at is None
        assert outbox.rows()[0].state == OutboxState.RELAYED


class TestRowsThatCannotBeRelayed:
    """A row that cannot be relayed is marked failed with the reason; the others go on."""

    def test_an_unknown_tenant_fails_only_its_row(self, outbox: Outbox) -> None:
        outbox.changes(["acme"], ["initech"], ["acme"])
        report = outbox.relay.relay_batch()
        rows = outbox.rows()
        assert [r.state for r in rows] == ["relayed", "failed", "relayed"]
        assert rows[1].last_error == "unknown tenant: 'initech'"
        assert report.failed == [(rows[1].id, "unknown tenant: 'initech'")]
        assert len(report.relayed) == 2

    def test_a_failed_row_is_relayed_once_retried_after_the_fix(self, outbox: Outbox) -> None:
        outbox.changes(["initech"])
        outbox.relay.relay_batch()
        outbox.h.tenant("initech")
        assert outbox.relay.retry_failed() == 1
        assert outbox.relay.retry_failed() == 0
        report = outbox.relay.relay_batch()
        [row] = outbox.rows()
        assert report.relayed == [row.event_id]
        assert (row.state, row.last_error) == (OutboxState.RELAYED, None)

    def test_retry_can_name_rows(self, outbox: Outbox) -> None:
        outbox.changes(["initech"], ["initech"])
        outbox.relay.relay_batch()
        _first, second = outbox.rows()
        assert outbox.relay.retry_failed([second.id]) == 1
        assert [r.state for r in outbox.rows()] == ["failed", "pending"]

    def test_an_event_type_this_process_does_not_know_fails_the_row(self, outbox: Outbox) -> None:
        outbox.h.catalogue = default_catalogue(["acme.thing.happened"])
        outbox.feed.catalogue = outbox.h.catalogue
        outbox.feed.watch(CrewMember, attributes=["name"], event_type="acme.thing.happened",
                          recipients=["acme"])
        with transaction(outbox.h.sessions) as session:
            session.add(CrewMember(id="c1", name="Ada"))
        with transaction(outbox.h.sessions) as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.name = "Ada L."
        relay = outbox.relay_with(catalogue=default_catalogue())
        relay.relay_batch()
        [row] = outbox.rows()
        assert row.state == OutboxState.FAILED
        assert row.last_error is not None and "acme.thing.happened" in row.last_error

    def test_an_oversized_payload_waits_for_a_larger_limit(self, outbox: Outbox) -> None:
        outbox.feed.max_payload_bytes = 2048
        outbox.feed.watch(CrewMember, attributes=["name"], event_type="crew.profile.updated",
                          recipients=["acme"], payload=lambda c: {"bio": "x" * 3000})
        with transaction(outbox.h.sessions) as session:
            session.add(CrewMember(id="c1", name="Ada"))
        with transaction(outbox.h.sessions) as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.name = "Ada L."
        assert [r.state for r in outbox.rows()] == ["failed"]
        assert outbox.relay_with(max_payload_bytes=2048).retry_failed() == 1
        outbox.relay_with(max_payload_bytes=2048).relay_batch()
        assert [r.state for r in outbox.rows()] == ["failed"]
        outbox.relay.retry_failed()
        assert len(outbox.relay.relay_batch().relayed) == 1

    def test_a_row_that_breaks_its_insert_is_isolated(self, outbox: Outbox,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        outbox.changes(["acme"], ["acme"], ["acme"])
        poison = outbox.rows()[1].event_id
        real = relay_module.record_events

        def record(conn: Any, cache: Any, tenant: str, environment: str, valid: Any) -> Any:
            if any(item.event_id == poison for item in valid):
                raise IntegrityError("INSERT INTO events", {}, Exception("duplicate key"))
            return real(conn, cache, tenant, environment, valid)

        monkeypatch.setattr(relay_module, "record_events", record)
        report = outbox.relay.relay_batch()
        assert [r.state for r in outbox.rows()] == ["relayed", "failed", "relayed"]
        assert len(report.relayed) == 2 and report.failed[0][1].startswith("IntegrityError")
        assert len(outbox.events()) == 2

    def test_a_lost_connection_leaves_every_row_pending(self, outbox: Outbox,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        outbox.changes(["acme"], ["acme"])

        def record(*_args: Any, **_options: Any) -> Any:
            raise OperationalError("INSERT INTO events", {}, Exception("server closed the connection"))

        monkeypatch.setattr(relay_module, "record_events", record)
        with pytest.raises(OperationalError):
            outbox.relay.relay_batch()
        assert [r.state for r in outbox.rows()] == ["pending", "pending"]
        assert outbox.events() == []


class TestHousekeeping:
    """Old relayed rows are pruned; pending and failed rows never are."""

    def test_prune_deletes_only_old_relayed_rows(self, outbox: Outbox) -> None:
        outbox.changes(["acme"], ["initech"])
        outbox.relay.relay_batch()
        outbox.changes(["acme"])  # a third row, still pending
        assert outbox.relay.counts() == {"relayed": 1, "failed": 1, "pending": 1}
        assert outbox.relay.prune(utcnow() - timedelta(hours=1)) == 0
        assert outbox.relay.prune(utcnow() + timedelta(seconds=1)) == 1
        assert outbox.relay.counts() == {"failed": 1, "pending": 1}
        assert len(outbox.events()) == 1
