"""Publishing in bulk: per-item results, idempotency within and across calls, batched enqueue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app import admin
from app.client import Hookline
from app.db import transaction
from app.errors import BatchTooLarge, InputError, UnknownTenant
from app.fanout import MAX_BATCH_EVENTS, BatchResult, ItemResult, publish_many
from app.models import Delivery, Endpoint, Event, Tenant
from app.partitioning import queue_for
from app.publishing import subscribers
from app.subscribers import SubscriberCache
from tests.unit.conftest import Harness

DATA = {"crew_id": "crw_1", "status": "verified"}


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness


def item(event_type: str = "crew.document.processed", data: Any = None,
         **extra: Any) -> dict[str, Any]:
    return {"event_type": event_type, "data": DATA if data is None else data, **extra}


def many(h: Harness, tenant: Tenant | str, items: Sequence[Mapping[str, Any]],
         cache: SubscriberCache | None = None, **options: Any) -> BatchResult:
    ref = tenant.id if isinstance(tenant, Tenant) else tenant
    return publish_many(h.engine, h.dispatcher, h.catalogue, cache or SubscriberCache(),
                        tenant=ref, items=items,
                        max_payload_bytes=h.settings.max_payload_bytes, **options)


def endpoints_of(h: Harness, delivery_ids: Sequence[str]) -> set[str]:
    return {h.delivery(i).endpoint_id for i in delivery_ids}


class TestItemResults:
    """Every item gets a result: created, existing, or an error naming its index and field."""

    def test_good_items_are_created_with_one_delivery_per_subscriber(self, h: Harness) -> None:
        tenant = h.tenant()
        first = h.endpoint(tenant, url="https://receiver.example/1")
        second = h.endpoint(tenant, url="https://receiver.example/2")

        result = many(h, tenant, [item(), item("run.failed", {"run": 1})])

        assert [(r.index, r.status) for r in result.items] == [(0, "created"), (1, "created")]
        for r in result.items:
            assert r.event_id is not None and r.error is None and r.field is None
            assert endpoints_of(h, r.delivery_ids) == {first.id, second.id}
        assert h.event(result.items[1].event_id or "").payload == {"run": 1}
        assert (h.count(Event), h.count(Delivery)) == (2, 4)
        assert result.count("created") == 2 and result.parked == []

    def test_bad_items_are_reported_with_their_field_and_write_nothing(self,
                                                                       h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        items = [
            item(),
            item("no.such.type"),
            item(data=["not", "an", "object"]),
            item(data={"blob": "x" * h.settings.max_payload_bytes}),
            item(idempotency_key="k" * 201),
            {"data": DATA},
            item("session.completed", {"status": "done"}),
            item(occurred_at="yesterday"),
            item(idempotency_key="k" * 200),
        ]

        result = many(h, tenant, items)

        assert [(r.index, r.status, r.field) for r in result.items] == [
            (0, "created", None),
            (1, "error", "type"),
            (2, "error", "data"),
            (3, "error", "data"),
            (4, "error", "idempotencyKey"),
            (5, "error", "type"),
            (6, "error", "data"),
            (7, "error", "occurredAt"),
            (8, "created", None),
        ]
        for r in result.items:
            if r.status == "error":
                assert r.error and r.event_id is None and r.delivery_ids == ()
        assert "no.such.type" in (result.items[1].error or "")
        assert (h.count(Event), h.count(Delivery)) == (2, 2)
        written = {r.event_id for r in result.items if r.status == "created"}
        assert Counter(h.sender.delivery_ids_sent()) == Counter(
            i for r in result.items for i in r.delivery_ids)
        assert len(written) == 2

    def test_a_batch_of_only_bad_items_writes_and_sends_nothing(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        result = many(h, tenant, [item("no.such.type"), item(data=7)])
        assert result.count("error") == 2
        assert (h.count(Event), h.count(Delivery), h.sender.sent) == (0, 0, [])


    def test_a_time_outside_utcs_range_is_an_occurred_at_error(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
        result = many(h, tenant, [item(occurred_at=early), item()])
        bad, good = result.items
        assert (bad.status, bad.field) == ("error", "occurredAt")
        assert good.status == "created"
        assert h.count(Event) == 1

    def test_a_single_publish_refuses_it_too(self, h: Harness) -> None:
        tenant = h.tenant()
        late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))
        with pytest.raises(InputError, match="occurredAt"):
            Hookline(h.settings, sender=h.sender).publish(tenant.id, "crew.document.processed",
                                                         DATA, occurred_at=late)
        assert h.count(Event) == 0


class TestIdempotency:
    """A key already seen, in this batch or an earlier call, gives the existing event."""

    def test_a_key_repeated_in_one_batch_makes_one_event(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)

        result = many(h, tenant, [item(idempotency_key="k1"),
                                  item(data={"other": True}, idempotency_key="k1")])

        first, second = result.items
        assert (first.status, second.status) == ("created", "existing")
        assert second.event_id == first.event_id
        assert second.delivery_ids == first.delivery_ids and len(first.delivery_ids) == 1
        assert (h.count(Event), h.count(Delivery)) == (1, 1)
        assert h.event(first.event_id or "").payload == DATA
        assert h.sender.delivery_ids_sent() == list(first.delivery_ids)

    def test_a_key_from_an_earlier_call_gives_existing_with_its_deliveries(self,
                                                                           h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant, url="https://receiver.example/1")
        h.endpoint(tenant, url="https://receiver.example/2")
        earlier = h.publish(tenant, idempotency_key="k1")
        sent_before = len(h.sender.sent)

        result = many(h, tenant, [item(idempotency_key="k1"), item(idempotency_key="k2")])

        existing, created = result.items
        assert existing == ItemResult(0, "existing", earlier.event_id,
                                      tuple(sorted(earlier.delivery_ids)))
        assert created.status == "created"
        assert (h.count(Event), h.count(Delivery)) == (2, 4)
        assert Counter(i for t in h.sender.sent[sent_before:] for i in t.args[0]) == Counter(
            created.delivery_ids)

    def test_an_implied_key_from_the_data_is_honoured(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        session = {"sessionId": "ses_1", "status": "completed"}

        result = many(h, tenant, [item("session.completed", session),
                                  item("session.completed", session)])

        assert [r.status for r in result.items] == ["created", "existing"]
        assert h.event(result.items[0].event_id or "").idempotency_key == "sessionId:ses_1"

    def test_keys_are_scoped_to_the_tenant(self, h: Harness) -> None:
        acme, other = h.tenant(), h.tenant()
        h.publish(acme, idempotency_key="k1")
        [result] = many(h, other, [item(idempotency_key="k1")]).items
        assert result.status == "created"


class TestBatchWideRefusals:
    """A batch too large, or for an unknown tenant, is refused whole."""

    def test_more_than_the_maximum_is_refused_and_writes_nothing(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        with pytest.raises(BatchTooLarge) as caught:
            many(h, tenant, [item()] * (MAX_BATCH_EVENTS + 1))
        assert (caught.value.size, caught.value.limit) == (1001, 1000)
        assert (h.count(Event), h.count(Delivery), h.sender.sent) == (0, 0, [])

    def test_exactly_the_maximum_is_accepted(self, h: Harness) -> None:
        tenant = h.tenant()
        result = many(h, tenant, [item()] * MAX_BATCH_EVENTS)
        assert result.count("created") == MAX_BATCH_EVENTS
        assert h.count(Event) == MAX_BATCH_EVENTS

    def test_an_unknown_tenant_is_refused_and_writes_nothing(self, h: Harness) -> None:
        with pytest.raises(UnknownTenant):
            many(h, "tnt_missing", [item()])
        assert h.count(Event) == 0


class TestEnqueue:
    """The batch's deliveries go to their partition queues many ids per message."""

    def test_one_message_per_partition_queue_not_one_per_event(self, h: Harness) -> None:
        tenant = h.tenant()
        endpoints = [h.endpoint(tenant, url=f"https://receiver.example/{n}") for n in range(3)]
        queues = {queue_for(e.id, h.settings.partitions) for e in endpoints}

        result = many(h, tenant, [item()] * 10)

        all_ids = [i for r in result.items for i in r.delivery_ids]
        assert len(all_ids) == 30
        assert len(h.sender.sent) == len(queues)
        assert {t.options["queue"] for t in h.sender.sent} == queues
        endpoint_of = {i: h.delivery(i).endpoint_id for i in all_ids}
        for task in h.sender.sent:
            assert task.name == "hookline.deliver"
            [ids] = task.args
            assert {queue_for(endpoint_of[i], h.settings.partitions) for i in ids} == {
                task.options["queue"]}
        assert Counter(h.sender.delivery_ids_sent()) == Counter(all_ids)

    def test_a_queue_gets_one_message_per_task_batch(self,
                                                     make_harness: Callable[..., Harness]) -> None:
        h = make_harness(partitions=1, task_batch=4)
        tenant = h.tenant()
        h.endpoint(tenant)
        result = many(h, tenant, [item()] * 10)
        all_ids = [i for r in result.items for i in r.delivery_ids]
        assert [t.args[0] for t in h.sender.sent] == [all_ids[0:4], all_ids[4:8],
                                                       all_ids[8:10]]

    def test_deliveries_the_broker_refused_are_parked(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant)
        h.sender.down = True
        result = many(h, tenant, [item(), item()])
        all_ids = [i for r in result.items for i in r.delivery_ids]
        assert sorted(result.parked) == sorted(all_ids)
        assert all(h.delivery(i).queued_at is None for i in all_ids)


class TestMatching:
    """Fan-out picks exactly the endpoints the subscription rules pick for one event."""

    @pytest.mark.parametrize("event_type", ["crew.document.processed", "crew.status.changed",
                                            "run.failed", "Pass:Created", "hookline.ping"])
    def test_the_same_endpoints_as_the_subscription_rules(self, h: Harness,
                                                          event_type: str) -> None:
        tenant, other = h.tenant(), h.tenant()
        for n, events in enumerate([["*"], ["crew.*"], ["crew.document.*"],
                                    ["crew.document.processed"], ["run.failed", "Pass:*"],
                                    ["Pass:Installed"]]):
            h.endpoint(tenant, events=events, url=f"https://receiver.example/{n}")
        disabled = h.endpoint(tenant, url="https://receiver.example/off")
        admin.set_endpoint_enabled(h.sessions, disabled.id, False)
        deleted = h.endpoint(tenant, url="https://receiver.example/gone")
        admin.delete_endpoint(h.sessions, deleted.id)
        h.endpoint(tenant, url="https://receiver.example/staging", environment="staging")
        h.endpoint(other, url="https://receiver.example/other")
        h.publish(tenant, event_type, {"x": 1}, webhook_url="https://receiver.example/one-off")
        with transaction(h.sessions) as session:
            expected = expected_targets(session, tenant.id, event_type)

        [result] = many(h, tenant, [item(event_type, {"x": 1})]).items

        assert endpoints_of(h, result.delivery_ids) == expected
        assert expected, "every type here has a subscriber"

    def test_the_environment_chooses_the_endpoints(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant, url="https://receiver.example/prod")
        staging = h.endpoint(tenant, url="https://receiver.example/staging",
                             environment="staging")
        [result] = many(h, tenant, [item()], environment="staging").items
        assert endpoints_of(h, result.delivery_ids) == {staging.id}
        assert h.event(result.event_id or "").environment == "staging"


def expected_targets(session: Session, tenant_id: str, event_type: str) -> set[str]:
    """The endpoints the single-event ORM rules of app.publishing choose."""
    chosen = subscribers(session, tenant_id, event_type, "production")
    assert all(isinstance(e, Endpoint) for e in chosen)
    return {e.id for e in chosen}
