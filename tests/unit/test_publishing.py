"""Publishing: validation before writing, fan-out in one transaction, enqueue after commit."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app import admin
from app.errors import (
    InputError,
    InvalidEndpointURL,
    InvalidEventType,
    InvalidPayload,
    PayloadTooLarge,
    UnknownEventType,
    UnknownTenant,
)
from app.models import Delivery, DeliveryState, Endpoint, Event, Tenant
from app.partitioning import queue_for
from app.publishing import encode_payload, one_off_secret
from tests.unit.conftest import Harness, SentTask


def endpoints_over_queues(h: Harness, tenant: Tenant, queues: int) -> list[Endpoint]:
    """Endpoints of *tenant*, added until they cover *queues* different partition queues."""
    endpoints: list[Endpoint] = []
    for n in range(200):
        endpoints.append(h.endpoint(tenant, url=f"https://receiver.example/{n}"))
        if len({queue_for(e.id, h.settings.partitions) for e in endpoints}) == queues:
            return endpoints
    raise AssertionError("could not spread endpoints over enough partitions")


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """An object *depth* levels deep, objects and arrays in turn: ``{"d": [{"d": [… leaf]}]}``."""
    value = leaf
    for level in range(depth - 1):
        value = [value] if level % 2 == 0 else {"d": value}
    return {"d": value}


class TestFanOut:
    """An event gets one delivery per enabled endpoint of its tenant whose filters match."""

    def test_only_enabled_matching_endpoints_of_the_tenant_get_a_delivery(self,
                                                                          harness: Harness) -> None:
        h = harness
        acme, other = h.tenant("acme"), h.tenant("other")
        everything = h.endpoint(acme, events=["*"])
        documents = h.endpoint(acme, events=["crew.document.*"])
        exact = h.endpoint(acme, events=["crew.document.processed"])
        h.endpoint(acme, events=["crew.status.changed", "Pass:*"])
        disabled = h.endpoint(acme, events=["*"])
        admin.set_endpoint_enabled(h.sessions, disabled.id, False)
        h.endpoint(other, events=["*"])

        result = h.publish(acme, "crew.document.processed")

        assert result.created
        rows = [h.delivery(i) for i in result.delivery_ids]
        assert {d.endpoint_id for d in rows} == {everything.id, documents.id, exact.id}
        assert h.count(Delivery) == 3
        for row in rows:
            assert row.event_id == result.event_id
            assert row.tenant_id == acme.id
            assert row.state == DeliveryState.PENDING
            assert row.attempt_count == 0
            assert row.queued_at is not None

    def test_the_event_is_stored_with_its_type_payload_and_time(self, harness: Harness) -> None:
        acme = harness.tenant("acme")
        occurred = datetime(2026, 6, 8, 10, 0, tzinfo=UTC)
        result = harness.publish(acme, "Pass:Created", {"pass_id": "p1", "n": 2},
                                 occurred_at=occurred)
        event = harness.event(result.event_id)
        assert result.event_id.startswith("evt_")
        assert (event.tenant_id, event.event_type) == (acme.id, "Pass:Created")
        assert event.payload == {"pass_id": "p1", "n": 2}
        assert event.occurred_at == occurred

    def test_a_tenant_may_be_named_by_id_or_by_name(self, harness: Harness) -> None:
        acme = harness.tenant("acme")
        harness.endpoint(acme)
        by_name = harness.publish("acme")
        by_id = harness.publish(acme.id)
        assert harness.event(by_name.event_id).tenant_id == acme.id
        assert harness.event(by_id.event_id).tenant_id == acme.id

    def test_an_event_nobody_subscribes_to_is_stored_and_sends_nothing(self,
                                                                       harness: Harness) -> None:
        acme = harness.tenant("acme")
        harness.endpoint(acme, events=["Pass:*"])
        result = harness.publish(acme, "crew.document.processed")
        assert result.delivery_ids == []
        assert harness.count(Event) == 1
        assert harness.sender.sent == []


class TestEnqueue:
    """After the commit, one message per partition chunk carries the delivery ids."""

    def test_each_partition_queue_gets_one_message_with_its_delivery_ids(self,
                                                                         harness: Harness) -> None:
        h = harness
        acme = h.tenant("acme")
        endpoints = endpoints_over_queues(h, acme, 3)
        result = h.publish(acme)

        endpoint_of = {i: h.delivery(i).endpoint_id for i in result.delivery_ids}
        assert sorted(endpoint_of.values()) == sorted(e.id for e in endpoints)
        queues = [task.options["queue"] for task in h.sender.sent]
        assert len(queues) == len(set(queues)) == 3, "one message per queue"
        for task in h.sender.sent:
            assert task.name == "hookline.deliver"
            assert set(task.options) == {"queue"}
            [ids] = task.args
            assert all(task.options["queue"] == queue_for(endpoint_of[i], 8) for i in ids)
        assert Counter(h.sender.delivery_ids_sent()) == Counter(result.delivery_ids)
        assert result.parked == []

    def test_a_queue_with_more_deliveries_than_task_batch_gets_one_message_per_chunk(
        self, make_harness: Callable[..., Harness]
    ) -> None:
        h = make_harness(partitions=1, task_batch=2)
        acme = h.tenant("acme")
        for n in range(5):
            h.endpoint(acme, url=f"https://receiver.example/{n}")
        result = h.publish(acme)
        ids = result.delivery_ids
        assert [(t.name, t.args, t.options) for t in h.sender.sent] == [
            ("hookline.deliver", [ids[0:2]], {"queue": "hookline.p0"}),
            ("hookline.deliver", [ids[2:4]], {"queue": "hookline.p0"}),
            ("hookline.deliver", [ids[4:5]], {"queue": "hookline.p0"}),
        ]

    def test_messages_are_sent_only_after_the_deliveries_are_committed(self,
                                                                       harness: Harness) -> None:
        h = harness
        acme = h.tenant("acme")
        h.endpoint(acme)
        h.endpoint(acme)
        seen: list[int] = []

        def check_committed(task: SentTask) -> None:
            # A fresh session sees only committed rows.
            with h.sessions() as session:
                seen.append(session.scalar(
                    select(func.count()).select_from(Delivery)
                    .where(Delivery.id.in_(task.args[0]))) or 0)
            assert seen[-1] == len(task.args[0])

        h.sender.on_send = check_committed
        result = h.publish(acme)
        assert sum(seen) == len(result.delivery_ids) == 2


class TestBrokerOutage:
    """When the broker refuses, the event is kept and its deliveries are parked for the sweeper."""

    def test_a_broker_outage_parks_every_delivery(self, harness: Harness) -> None:
        h = harness
        acme = h.tenant("acme")
        h.endpoint(acme)
        h.endpoint(acme)
        h.sender.down = True

        result = h.publish(acme)

        assert h.sender.refused, "the broker was asked"
        assert sorted(result.parked) == sorted(result.delivery_ids)
        assert len(result.delivery_ids) == 2
        assert h.count(Event) == 1
        for delivery_id in result.delivery_ids:
            row = h.delivery(delivery_id)
            assert row.queued_at is None
            assert row.state == DeliveryState.PENDING

    def test_only_the_deliveries_whose_message_failed_are_parked(self, harness: Harness) -> None:
        h = harness
        acme = h.tenant("acme")
        endpoints = endpoints_over_queues(h, acme, 2)
        broken_queue = queue_for(endpoints[0].id, 8)

        def refuse_one_queue(task: SentTask) -> None:
            if task.options["queue"] == broken_queue:
                raise ConnectionError("queue unavailable")

        h.sender.on_send = refuse_one_queue
        result = h.publish(acme)

        on_broken = {i for i in result.delivery_ids
                     if queue_for(h.delivery(i).endpoint_id, 8) == broken_queue}
        assert on_broken and len(on_broken) < len(result.delivery_ids)
        assert set(result.parked) == on_broken
        assert set(h.sender.delivery_ids_sent()) == set(result.delivery_ids) - on_broken
        for delivery_id in result.delivery_ids:
            assert (h.delivery(delivery_id).queued_at is None) == (delivery_id in on_broken)


class TestBadInput:
    """Bad input raises a clear error and writes nothing at all."""

    @pytest.mark.parametrize(
        ("change", "error"),
        [
            ({"tenant": "nobody"}, UnknownTenant),
            ({"event_type": "acme.thing.happened"}, UnknownEventType),
            ({"event_type": "not a type"}, InvalidEventType),
            ({"data": [1, 2]}, InvalidPayload),
            ({"data": "text"}, InvalidPayload),
            ({"data": {"tags": {"a", "b"}}}, InvalidPayload),
            ({"data": {"score": float("nan")}}, InvalidPayload),
            ({"data": {"blob": "x" * (256 * 1024)}}, PayloadTooLarge),
            ({"idempotency_key": ""}, InputError),
            ({"idempotency_key": "k" * 201}, InputError),
            ({"data": nested(900)}, InvalidPayload),
        ],
        ids=["unknown-tenant", "unknown-type", "malformed-type", "list-payload", "str-payload",
             "set-in-payload", "nan-in-payload", "too-large", "empty-key", "long-key",
             "nested-900-deep"],
    )
    def test_nothing_is_written(self, harness: Harness, change: dict[str, Any],
                                error: type[Exception]) -> None:
        h = harness
        acme = h.tenant("acme")
        h.endpoint(acme)
        args: dict[str, Any] = {"tenant": acme.id, "event_type": "crew.document.processed",
                                "data": {"crew_id": "crw_1"}} | change
        with pytest.raises(error):
            h.publish(args.pop("tenant"), **args)
        assert h.count(Event) == 0
        assert h.count(Delivery) == 0
        assert h.sender.sent == []


class TestEncodePayload:
    """The payload limit counts the UTF-8 bytes of the compact JSON; nesting is capped at 64."""

    @pytest.mark.parametrize("depth", [65, 500, 900, 5000])
    def test_data_nested_past_64_levels_is_refused_before_anything_recurses(self,
                                                                             depth: int) -> None:
        with pytest.raises(InvalidPayload, match="data is JSON nested deeper than 64 levels"):
            encode_payload(nested(depth), 1_000_000)

    def test_data_nested_64_levels_is_kept_and_a_nul_at_the_bottom_still_refused(self) -> None:
        assert encode_payload(nested(64), 1_000_000) == nested(64)
        with pytest.raises(InvalidPayload, match="NUL"):
            encode_payload(nested(64, leaf="a\x00b"), 1_000_000)

    def test_a_payload_exactly_at_the_limit_is_accepted(self) -> None:
        data = {"blob": "x" * 1013}  # {"blob":"…"} is 11 bytes of framing
        assert encode_payload(data, 1024) == data

    def test_one_byte_over_the_limit_is_refused_with_the_sizes(self) -> None:
        with pytest.raises(PayloadTooLarge) as caught:
            encode_payload({"blob": "x" * 1014}, 1024)
        assert (caught.value.size, caught.value.limit) == (1025, 1024)

    def test_multibyte_characters_count_as_their_utf8_length(self) -> None:
        with pytest.raises(PayloadTooLarge) as caught:
            encode_payload({"blob": "é" * 507}, 1024)  # 11 + 2 * 507 = 1025
        assert caught.value.size == 1025


class TestIdempotency:
    """A repeated idempotency key returns the first event and sends nothing new."""

    def test_a_repeated_key_returns_the_same_event_without_new_work(self,
                                                                    harness: Harness) -> None:
        h = harness
        acme = h.tenant("acme")
        h.endpoint(acme)
        h.endpoint(acme)
        first = h.publish(acme, idempotency_key="order-42")
        messages = len(h.sender.sent)

        second = h.publish(acme, idempotency_key="order-42", data={"different": True})

        assert first.created and not second.created
        assert second.event_id == first.event_id
        assert sorted(second.delivery_ids) == sorted(first.delivery_ids)
        assert h.count(Event) == 1
        assert h.count(Delivery) == 2
        assert len(h.sender.sent) == messages
        assert h.event(first.event_id).payload == {"crew_id": "crw_1", "status": "verified"}

    def test_keys_are_scoped_to_the_tenant(self, harness: Harness) -> None:
        acme, other = harness.tenant("acme"), harness.tenant("other")
        first = harness.publish(acme, idempotency_key="order-42")
        second = harness.publish(other, idempotency_key="order-42")
        assert second.created
        assert second.event_id != first.event_id

    def test_without_a_key_every_publish_is_a_new_event(self, harness: Harness) -> None:
        acme = harness.tenant("acme")
        assert harness.publish(acme).event_id != harness.publish(acme).event_id
        assert harness.count(Event) == 2


class TestAddEndpoint:
    """Endpoints need an absolute http(s) URL with a host and known filters."""

    def test_a_valid_endpoint_is_stored_enabled_with_a_fresh_secret(self,
                                                                     harness: Harness) -> None:
        acme = harness.tenant("acme")
        new = admin.add_endpoint(harness.sessions, harness.catalogue, tenant="acme",
                                 url=" https://receiver.example/hooks ",
                                 events=["Pass:Created", "Pass:Created", "Customer:*"])
        row = harness.endpoint_row(new.endpoint.id)
        assert row.tenant_id == acme.id
        assert row.url == "https://receiver.example/hooks"
        assert row.event_types == ["Pass:Created", "Customer:*"]
        assert row.enabled and row.contract == "crewpass"
        assert row.secret == new.secret and new.secret.startswith("cpsk_")

    @pytest.mark.parametrize(
        "url",
        ["ftp://receiver.example/hooks", "https:///hooks", "not a url", "", "   ",
         "https://user:pw@receiver.example/", "https://receiver.example:99999/",
         "https://receiver.example/" + "a" * 2048],
        ids=["ftp", "no-host", "not-a-url", "empty", "blank", "credentials", "bad-port",
             "too-long"],
    )
    def test_a_bad_url_is_refused_and_nothing_is_written(self, harness: Harness,
                                                         url: str) -> None:
        harness.tenant("acme")
        with pytest.raises(InvalidEndpointURL):
            admin.add_endpoint(harness.sessions, harness.catalogue, tenant="acme", url=url,
                               events=["*"])
        assert harness.count(Endpoint) == 0

    @pytest.mark.parametrize(
        ("change", "error"),
        [({"tenant": "nobody"}, UnknownTenant), ({"events": ["acme.thing.happened"]},
                                                 UnknownEventType),
         ({"events": []}, InvalidEventType), ({"contract": "svix"}, InputError),
         ({"timeout_seconds": 0}, InputError), ({"max_attempts": 51}, InputError)],
        ids=["unknown-tenant", "unknown-filter", "no-filter", "unknown-contract",
             "zero-timeout", "too-many-attempts"],
    )
    def test_other_bad_input_is_refused_and_nothing_is_written(
        self, harness: Harness, change: dict[str, Any], error: type[Exception]
    ) -> None:
        harness.tenant("acme")
        args: dict[str, Any] = {"tenant": "acme", "url": "https://receiver.example/",
                                "events": ["*"]} | change
        with pytest.raises(error):
            admin.add_endpoint(harness.sessions, harness.catalogue, **args)
        assert harness.count(Endpoint) == 0


class TestOneOffDestination:
    """A one-off destination (``webhook_url``) takes the wire format of the tenant's oldest
    matching webhook, never its credentials."""

    def test_it_gets_a_new_secret_and_none_of_the_templates_secrets_or_static_headers(
        self, harness: Harness
    ) -> None:
        tenant = harness.tenant("acme")
        template = harness.endpoint(tenant, events=["session.*"], contract="cr3dentials",
                                    auth_header="X-Partner-Key", timeout_seconds=7,
                                    max_attempts=2, headers={"Authorization": "Bearer live"})
        admin.rotate_secret(harness.sessions, template.id, grace=timedelta(hours=1))
        template = harness.endpoint_row(template.id)

        result = harness.publish(tenant, "session.completed", {"sessionId": "s1"},
                                 webhook_url="https://bank.example/s1")

        one_off = harness.endpoint_row(harness.delivery(result.delivery_ids[0]).endpoint_id)
        assert one_off.one_off and one_off.url == "https://bank.example/s1"
        assert (one_off.contract, one_off.auth_header, one_off.timeout_seconds,
                one_off.max_attempts) == ("cr3dentials", "X-Partner-Key", 7, 2)
        assert one_off.secret.startswith("c3k_")
        assert one_off.secret not in (template.secret, template.previous_secret)
        assert one_off.previous_secret is None and one_off.headers == {}
        assert one_off_secret(harness.sessions, result) == one_off.secret

    def test_it_is_signed_with_the_secret_the_caller_names(self, harness: Harness) -> None:
        tenant = harness.tenant("acme")
        harness.endpoint(tenant, events=["session.*"], contract="standard-webhooks")
        named = "whsec_" + base64.b64encode(b"k" * 32).decode()

        result = harness.publish(tenant, "session.completed", {"sessionId": "s1"},
                                 webhook_url="https://bank.example/s1", webhook_secret=named)

        one_off = harness.endpoint_row(harness.delivery(result.delivery_ids[0]).endpoint_id)
        assert (one_off.contract, one_off.secret) == ("standard-webhooks", named)

    def test_a_named_secret_unfit_for_the_contract_is_refused_and_nothing_is_written(
        self, harness: Harness
    ) -> None:
        tenant = harness.tenant("acme")
        harness.endpoint(tenant, events=["session.*"], contract="standard-webhooks")
        with pytest.raises(InputError, match="whsec_"):
            harness.publish(tenant, "session.completed", {"sessionId": "s1"},
                            webhook_url="https://bank.example/s1",
                            webhook_secret="not-a-standard-webhooks-secret")
        assert (harness.count(Event), harness.count(Endpoint)) == (0, 1)

    def test_a_repeated_key_shows_no_secret_again(self, harness: Harness) -> None:
        tenant = harness.tenant("acme")
        harness.endpoint(tenant, events=["session.*"], contract="cr3dentials")
        first = harness.publish(tenant, "session.completed", {"sessionId": "s1"},
                                webhook_url="https://bank.example/s1")
        again = harness.publish(tenant, "session.completed", {"sessionId": "s1"},
                                webhook_url="https://bank.example/s1")
        assert one_off_secret(harness.sessions, first) is not None
        assert again.created is False and one_off_secret(harness.sessions, again) is None
