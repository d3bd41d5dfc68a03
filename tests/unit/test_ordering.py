"""Ordering keys and sequence numbers at publish, and ordered delivery in the engine and
the sweeper, on SQLite."""

from __future__ import annotations

import pytest

from app.engine import DeliveryEngine
from app.errors import InvalidOrderingKey
from app.names import BROKER_EPOCH_KEY
from app.ordering import check_ordering, check_ordering_key, implied_ordering_key
from app.rendering import ordering_headers
from app.sweeper import Sweeper
from tests.unit.conftest import T0, DictEpochStore, FixedClock, Harness, ScriptedTransport, http

CREW = "crew.status.changed"


class TestKeys:
    """An ordering key is checked like any stored text, and may be implied by the data."""

    @pytest.mark.parametrize("bad", ["", "k" * 201, "a\x00b", "\ud800", 7])
    def test_a_bad_key_is_refused(self, bad: object) -> None:
        with pytest.raises(InvalidOrderingKey):
            check_ordering_key(bad)

    def test_a_key_of_200_characters_is_accepted(self) -> None:
        assert check_ordering_key("k" * 200) == "k" * 200

    def test_the_declared_field_implies_the_key_and_its_absence_implies_none(self) -> None:
        assert implied_ordering_key("crew_unique_id", {"crew_unique_id": 42}) == "42"
        assert implied_ordering_key("crew_unique_id", {"crew_id": "c1"}) is None
        assert implied_ordering_key("crew_unique_id", {"crew_unique_id": True}) is None
        assert implied_ordering_key(None, {"crew_unique_id": "c1"}) is None

    def test_an_unknown_ordering_setting_is_refused(self) -> None:
        assert check_ordering("key") == "key"
        with pytest.raises(InvalidOrderingKey):
            check_ordering("fifo")

    def test_the_headers_carry_the_number_and_the_percent_encoded_key(self) -> None:
        assert ordering_headers("run/1 ü", 3) == {
            "X-Hookline-Sequence": "3", "X-Hookline-Ordering-Key": "run%2F1%20%C3%BC"}
        assert ordering_headers(None, None) == {}


class TestSequences:
    """Each tenant × key counts 1, 2, 3… across calls, batches and publish paths."""

    def test_single_publishes_batches_and_test_sends_share_one_count_per_tenant_and_key(
            self, harness: Harness) -> None:
        tenant, other = harness.tenant(), harness.tenant()
        endpoint = harness.endpoint(tenant)
        harness.endpoint(other)
        first = harness.publish(tenant, CREW, {"crew_unique_id": "c1"})
        from app.fanout import publish_many
        from app.subscribers import SubscriberCache

        batch = publish_many(harness.engine, harness.dispatcher, harness.catalogue,
                             SubscriberCache(), tenant=tenant.id,
                             max_payload_bytes=harness.settings.max_payload_bytes, items=[
                                 {"event_type": CREW, "data": {"crew_unique_id": "c1"}},
                                 {"event_type": CREW, "data": {"crew_unique_id": "c2"}},
                                 {"event_type": "run.succeeded", "data": {},
                                  "ordering_key": "c1"},
                                 {"event_type": "run.succeeded", "data": {}}])
        sent = harness.publish(tenant, "run.succeeded", {}, ordering_key="c1",
                               endpoint_ids=[endpoint.id])
        elsewhere = harness.publish(other, CREW, {"crew_unique_id": "c1"})

        numbers = [(e.ordering_key, e.sequence) for e in
                   (harness.event(first.event_id),
                    *(harness.event(i.event_id or "") for i in batch.items),
                    harness.event(sent.event_id), harness.event(elsewhere.event_id))]
        assert numbers == [("c1", 1), ("c1", 2), ("c2", 1), ("c1", 3), (None, None), ("c1", 4),
                           ("c1", 1)]

    def test_a_repeated_idempotency_key_takes_no_number(self, harness: Harness) -> None:
        tenant = harness.tenant()
        harness.publish(tenant, "run.succeeded", {}, ordering_key="k", idempotency_key="once")
        harness.publish(tenant, "run.succeeded", {}, ordering_key="k", idempotency_key="once")
        later = harness.publish(tenant, "run.succeeded", {}, ordering_key="k")
        assert harness.event(later.event_id).sequence == 2

    def test_only_an_ordered_endpoints_deliveries_get_the_key_and_position(
            self, harness: Harness) -> None:
        tenant = harness.tenant()
        ordered = harness.endpoint(tenant, ordering="key")
        plain = harness.endpoint(tenant)
        result = harness.publish(tenant, CREW, {"crew_unique_id": "c9"})
        rows = {harness.delivery(i).endpoint_id: harness.delivery(i) for i in result.delivery_ids}
        assert (rows[ordered.id].ordering_key, rows[ordered.id].position) == ("c9", 1)
        assert (rows[plain.id].ordering_key, rows[plain.id].position) == (None, None)


def engine_for(h: Harness, *answers: int) -> tuple[DeliveryEngine, ScriptedTransport]:
    transport = ScriptedTransport(*(http(s) for s in answers))
    return DeliveryEngine(h.settings, h.engine, transport, clock=FixedClock(T0),
                          unix_time=lambda: T0.timestamp(), uniform=lambda a, b: a), transport


class TestOrderedDelivery:
    """One delivery at a time per endpoint and key; the next goes when the head finishes."""

    def keyed(self, h: Harness, count: int, key: str = "c1") -> tuple[str, list[str]]:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant, ordering="key")
        ids = [h.publish(tenant, CREW, {"crew_unique_id": key, "n": n}).delivery_ids[0]
               for n in range(count)]
        h.sender.sent.clear()
        return endpoint.id, ids

    def test_a_later_delivery_is_held_back_while_the_head_is_unfinished(
            self, harness: Harness) -> None:
        _endpoint, (head, second) = self.keyed(harness, 2)
        engine, transport = engine_for(harness, 503)
        outcome = engine.run([head, second])

        assert [c.headers["X-Hookline-Sequence"] for c in transport.calls] == ["1"]
        assert outcome.skipped == [second]
        row = harness.delivery(second)
        assert (row.blocked, row.queued_at, row.state) == (True, None, "pending")
        assert outcome.released == []

    def test_a_succeeded_head_releases_the_next_of_its_key_as_a_follow_up(
            self, harness: Harness) -> None:
        endpoint, (head, second, third) = self.keyed(harness, 3)
        engine, _ = engine_for(harness, 200)
        outcome = engine.run([head, second, third])

        assert outcome.succeeded == [head]
        assert [(r.delivery_id, r.endpoint_id, r.countdown) for r in outcome.released] == [
            (second, endpoint, 0.0)]
        assert harness.delivery(second).blocked is False
        assert harness.delivery(third).blocked is True

    def test_a_dead_head_releases_the_next_one_too(self, harness: Harness) -> None:
        _endpoint, (head, second) = self.keyed(harness, 2)
        engine, _ = engine_for(harness, 400)
        outcome = engine.run([head, second])
        assert [d for d, _ in outcome.dead] == [head]
        assert [r.delivery_id for r in outcome.released] == [second]

    def test_other_keys_are_not_held_back(self, harness: Harness) -> None:
        tenant = harness.tenant()
        harness.endpoint(tenant, ordering="key")
        ids = [harness.publish(tenant, CREW, {"crew_unique_id": f"c{n}"}).delivery_ids[0]
               for n in range(3)]
        engine, transport = engine_for(harness, 503, 503, 503)
        outcome = engine.run(ids)
        assert len(transport.calls) == 3 and outcome.skipped == []

    def test_the_sweeper_sends_a_blocked_delivery_whose_head_finished_without_releasing_it(
            self, harness: Harness) -> None:
        _endpoint, (head, second) = self.keyed(harness, 2)
        engine, _ = engine_for(harness, 503)
        engine.run([head, second])
        harness.set_delivery(head, state="dead", dead_reason="exhausted")
        sweeper = Sweeper(harness.settings, harness.sessions, harness.dispatcher,
                          DictEpochStore({BROKER_EPOCH_KEY: "e"}), clock=FixedClock(T0))

        report = sweeper.run()

        assert report.released == 1
        assert second in harness.sender.delivery_ids_sent()
        assert harness.delivery(second).blocked is False

    def test_the_sweeper_leaves_a_blocked_delivery_whose_head_is_still_retrying(
            self, harness: Harness) -> None:
        _endpoint, (head, second) = self.keyed(harness, 2)
        engine, _ = engine_for(harness, 503)
        engine.run([head, second])
        sweeper = Sweeper(harness.settings, harness.sessions, harness.dispatcher,
                          DictEpochStore({BROKER_EPOCH_KEY: "e"}), clock=FixedClock(T0))
        harness.sender.sent.clear()

        report = sweeper.run()

        assert report.released == 0
        assert second not in harness.sender.delivery_ids_sent()
