"""Change capture through real producer and worker processes, on real PostgreSQL and Redis.

Domain changes are written in this process through a session with the change feed
installed; ``hookline producer`` processes relay the outbox; a worker delivers to the
loopback receiver, which checks every signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app.changefeed import ChangeFeed, Relay
from app.db import transaction
from app.receiver import Receiver
from tests.changefeed_domain import CrewMember, PartnerLink, watch_crew_status
from tests.integration.conftest import Stack
from tests.integration.producers import (
    Producers,
    delivered,
    domain_sessions,
    outbox_states,
    partner,
    producers_for,
    reset_change_feed_tables,
)
from tests.support import wait_until
from tests.unit.test_changefeed_schema import CHANGE_FEED_TABLES, _table_of

pytestmark = pytest.mark.integration

#: Longer than any wait below: a change that arrives proves NOTIFY woke the producer.
NO_POLLING = ["--poll-interval", "60"]


@pytest.fixture(autouse=True)
def _tables(stack: Stack) -> None:
    reset_change_feed_tables(stack)


@pytest.fixture
def producers(stack: Stack) -> Iterator[Producers]:
    yield from producers_for(stack)


@pytest.fixture
def feed(stack: Stack) -> ChangeFeed:
    feed = ChangeFeed.for_hookline(stack.hookline)
    watch_crew_status(feed)
    return feed


def add_crew(sessions: Any, crew_id: str, *partners: str, **values: Any) -> None:
    with sessions.begin() as session:
        session.add(CrewMember(id=crew_id, name=f"Name of {crew_id}", **values))
        session.flush()
        session.add_all(PartnerLink(crew_id=crew_id, partner=p) for p in partners)


def set_status(sessions: Any, crew_id: str, status: str) -> None:
    with sessions.begin() as session:
        crew = session.get(CrewMember, crew_id)
        assert crew is not None
        crew.status = status



class TestCapturedChanges:
    """Each watched change reaches exactly its partners, once, with the allow-listed payload."""

    def test_each_watched_change_yields_exactly_its_event(self, stack: Stack, receiver: Receiver,
                                                          producers: Producers, feed: ChangeFeed) -> None:
        acme = partner(stack, receiver, "acme")
        globex = partner(stack, receiver, "globex")
        stack.worker()
        producers.start(*NO_POLLING)
        sessions = domain_sessions(stack, feed)
        add_crew(sessions, "c1", "acme", "globex", email="c1@example.test")
        add_crew(sessions, "c2", "acme")
        add_crew(sessions, "c3")  # linked to no partner: nobody hears about it

        set_status(sessions, "c1", "verified")
        set_status(sessions, "c2", "verified")
        set_status(sessions, "c2", "expired")
        set_status(sessions, "c3", "verified")

        wait_until(lambda: len(receiver.accepted("/acme")) == 3 and len(receiver.accepted("/globex")) == 1,
                   what="4 deliveries (NOTIFY wakes the producer: it polls only every 60 s)")
        outbox = {(r[0], r[1]): r[2] for r in stack.sql(
            "SELECT tenant_ref, payload->>'crew_id' || ':' || (payload->'changes'->'status'->>'new'), "
            "event_id FROM outbox")}

        def change(crew: str, old: str, new: str) -> dict[str, Any]:
            return {"crew_id": crew, "name": f"Name of {crew}",
                    "changes": {"status": {"old": old, "new": new}}}

        acme_got = delivered(receiver, "/acme")
        assert sorted((e["data"]["crew_id"], e["data"]["changes"]["status"]["new"]) for e in acme_got) == [
            ("c1", "verified"), ("c2", "expired"), ("c2", "verified")]
        by_data = {(e["data"]["crew_id"], e["data"]["changes"]["status"]["new"]): e for e in acme_got}
        assert by_data[("c1", "verified")]["data"] == change("c1", "pending", "verified")
        assert by_data[("c2", "verified")]["data"] == change("c2", "pending", "verified")
        assert by_data[("c2", "expired")]["data"] == change("c2", "verified", "expired")
        [globex_got] = delivered(receiver, "/globex")
        assert globex_got["data"] == change("c1", "pending", "verified")

        for envelope in acme_got:
            assert envelope["event_type"] == "crew.status.changed"
            assert envelope["partner_id"] == acme
            key = (envelope["data"]["crew_id"] + ":" + envelope["data"]["changes"]["status"]["new"])
            assert envelope["event_id"] == outbox[("acme", key)]
        assert globex_got["partner_id"] == globex
        assert globex_got["event_id"] == outbox[("globex", "c1:verified")]
        assert all(r.verified for r in receiver.received)
        assert "c1@example.test" not in json.dumps([*acme_got, globex_got])
        assert outbox_states(stack) == {"relayed": 4}
        assert receiver.duplicates == 0

    def test_rolled_back_and_unwatched_changes_yield_nothing(self, stack: Stack, receiver: Receiver,
                                                              producers: Producers, feed: ChangeFeed) -> None:
        partner(stack, receiver, "acme")
        stack.worker()
        producers.start(*NO_POLLING)
        sessions = domain_sessions(stack, feed)
        add_crew(sessions, "c1", "acme")
        add_crew(sessions, "marker", "acme")

        with sessions() as session:  # flushed (the outbox row is written), then rolled back
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.status = "verified"
            session.flush()
            session.rollback()
        with pytest.raises(RuntimeError), sessions.begin() as session:
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.status = "rejected"
            session.flush()
            raise RuntimeError("the application fails after the flush")
        with sessions.begin() as session:  # unwatched columns only
            crew = session.get(CrewMember, "c1")
            assert crew is not None
            crew.email, crew.name = "new@example.test", "Renamed"
        set_status(sessions, "c1", "pending")  # the value it already has
        set_status(sessions, "marker", "verified")  # the one change that counts

        wait_until(lambda: len(receiver.accepted("/acme")) == 1, what="the marker's delivery")
        time.sleep(1.0)  # a stray event would have been relayed with the marker; give it a moment anyway
        [only] = delivered(receiver, "/acme")
        assert only["data"]["crew_id"] == "marker"
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 1
        assert outbox_states(stack) == {"relayed": 1}


class TestSeveralProducers:
    """Producers share one outbox: every row is published once, under the id it was written with."""

    def test_two_producers_publish_each_row_once(self, stack: Stack, receiver: Receiver,
                                                 producers: Producers, feed: ChangeFeed) -> None:
        partner(stack, receiver, "acme")
        stack.worker("--pool", "prefork")
        first = producers.start("--batch", "5", *NO_POLLING)
        second = producers.start("--batch", "5", *NO_POLLING)
        sessions = domain_sessions(stack, feed)
        crew_ids = [f"c{n:03d}" for n in range(200)]
        with sessions.begin() as session:
            session.add_all(CrewMember(id=c, name=c) for c in crew_ids)
            session.flush()
            session.add_all(PartnerLink(crew_id=c, partner="acme") for c in crew_ids)
        for start in range(0, len(crew_ids), 5):  # 40 commits, each one a NOTIFY both producers hear
            with sessions.begin() as session:
                for crew in session.scalars(select(CrewMember).where(
                        CrewMember.id.in_(crew_ids[start:start + 5]))):
                    crew.status = "verified"

        wait_until(lambda: outbox_states(stack) == {"relayed": 200}, what="200 relayed rows")
        wait_until(lambda: len(receiver.accepted("/acme")) == 200, timeout=60, what="200 deliveries")
        outbox_ids = {r[0] for r in stack.sql("SELECT event_id FROM outbox")}
        event_ids = [r[0] for r in stack.sql("SELECT id FROM events")]
        assert len(event_ids) == 200 and set(event_ids) == outbox_ids
        assert stack.sql("SELECT count(*) FROM deliveries")[0][0] == 200
        assert receiver.accepted("/acme") == outbox_ids
        assert len(receiver.for_path("/acme")) == 200 and receiver.duplicates == 0
        # Each row was committed by exactly one producer's batch, and both producers took part
        # (40 commits, each a NOTIFY both hear: they split them about evenly).
        shares = [sum(first.relayed_counts()), sum(second.relayed_counts())]
        assert sum(shares) == 200 and min(shares) > 0, shares

    def test_a_locked_batch_is_skipped_not_waited_for(self, stack: Stack, feed: ChangeFeed) -> None:
        """FOR UPDATE SKIP LOCKED, in one process: a batch held open by one relay is left to it."""
        partner(stack, Receiver(), "acme")
        sessions = domain_sessions(stack, feed)
        for n in range(10):
            add_crew(sessions, f"c{n}", "acme")
            set_status(sessions, f"c{n}", "verified")
        ids = [r[0] for r in stack.sql("SELECT event_id FROM outbox ORDER BY id")]
        hl = stack.hookline
        relay = Relay(hl.sessions, hl.dispatcher, hl.catalogue,
                      max_payload_bytes=hl.settings.max_payload_bytes, batch=5)

        with pytest.raises(LookupError), transaction(hl.sessions) as holding:
            held = relay._claim(holding, limit=5)  # locked until this transaction ends
            started = time.monotonic()
            other = relay.relay_batch()
            assert time.monotonic() - started < 5
            assert [r.event_id for r in held] == ids[:5]
            assert other.relayed == ids[5:]
            raise LookupError("roll the holding transaction back")
        assert relay.relay_batch().relayed == ids[:5]
        assert outbox_states(stack) == {"relayed": 10}


class TestProducerFailures:
    """A producer killed mid-batch loses nothing and publishes nothing twice; SIGTERM stops it cleanly."""

    def test_a_producer_killed_mid_batch_and_restarted_loses_nothing(
            self, stack: Stack, receiver: Receiver, producers: Producers, feed: ChangeFeed) -> None:
        partner(stack, receiver, "acme")
        sessions = domain_sessions(stack, feed)
        crew_ids = [f"c{n:03d}" for n in range(400)]
        with sessions.begin() as session:
            session.add_all(CrewMember(id=c, name=c) for c in crew_ids)
            session.flush()
            session.add_all(PartnerLink(crew_id=c, partner="acme") for c in crew_ids)
        with sessions.begin() as session:
            for crew in session.scalars(select(CrewMember)):
                crew.status = "verified"
        written = {r[0] for r in stack.sql("SELECT event_id FROM outbox")}
        assert len(written) == 400
        stack.worker("--pool", "prefork")

        victim = producers.start("--batch", "4", *NO_POLLING)
        wait_until(lambda: outbox_states(stack).get("relayed", 0) >= 40, interval=0.01,
                   what="the producer to be part-way through the outbox")
        victim.kill()
        at_kill = outbox_states(stack)
        assert 0 < at_kill.get("relayed", 0) < 400, at_kill

        survivor = producers.start("--batch", "50", *NO_POLLING)
        wait_until(lambda: outbox_states(stack) == {"relayed": 400}, what="every row relayed")
        wait_until(lambda: len(receiver.accepted("/acme")) == 400, timeout=60, what="400 deliveries")
        event_ids = [r[0] for r in stack.sql("SELECT id FROM events")]
        assert len(event_ids) == 400 and set(event_ids) == written  # ids fixed when the change committed
        assert receiver.accepted("/acme") == written
        assert receiver.duplicates == 0
        # the victim may be killed between a commit and its log line, so count from the rows:
        # the survivor relayed exactly what the victim had not committed
        assert sum(survivor.relayed_counts()) == 400 - at_kill["relayed"]

        assert survivor.stop(timeout=10) == 0
        assert "producer stopped" in survivor.text()


class TestSchemaOnPostgreSQL:
    """The migration and the models agree on PostgreSQL too (JSONB, BIGINT, timestamptz)."""

    def test_the_migrated_schema_matches_the_models(self, stack: Stack) -> None:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        import app.changefeed.models  # noqa: F401
        from app.models import Base

        with stack.hookline.engine.connect() as connection:
            diffs = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                     Base.metadata)
        assert [d for d in diffs if _table_of(d) in CHANGE_FEED_TABLES] == []
