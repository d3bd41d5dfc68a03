"""Dead letters: listing them with filters, and requeueing them exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from app import admin
from app.deadletters import DeadLetterFilter, list_dead_letters, requeue
from app.errors import InvalidSelection
from app.models import DeadReason, DeliveryState, Endpoint, Tenant
from app.partitioning import queue_for
from tests.unit.conftest import T0, Harness


def kill(h: Harness, tenant: Tenant, *, reason: str = "exhausted",
         event_type: str = "crew.document.processed", dead_at: datetime = T0,
         endpoint: Endpoint | None = None) -> str:
    """Publish one event to *endpoint* (or the tenant's only one) and dead-letter its delivery."""
    ids = h.publish(tenant, event_type).delivery_ids
    if endpoint is not None:
        ids = [i for i in ids if h.delivery(i).endpoint_id == endpoint.id]
    [delivery_id] = ids
    h.set_delivery(delivery_id, state=DeliveryState.DEAD, dead_reason=reason, dead_at=dead_at,
                   attempt_count=8, queued_at=None, last_status_code=503, last_error="HTTP 503")
    return delivery_id


@pytest.fixture
def tenant(harness: Harness) -> Tenant:
    tenant = harness.tenant("acme")
    harness.endpoint(tenant, url="https://receiver.example/hooks")
    return tenant


class TestRequeue:
    """Requeue moves dead letters back to pending with a fresh budget and sends them."""

    def test_requeue_by_id_resets_the_delivery_and_sends_a_message(self, harness: Harness,
                                                                   tenant: Tenant) -> None:
        h = harness
        delivery_id = kill(h, tenant)
        h.sender.sent.clear()

        report = requeue(h.sessions, h.dispatcher, ids=[delivery_id])

        assert report.requeued == [delivery_id]
        assert (report.matched, report.not_dead, report.parked) == (1, [], [])
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.PENDING
        assert row.attempt_count == 0
        assert (row.dead_reason, row.dead_at) == (None, None)
        assert row.requeue_count == 1
        assert row.queued_at is not None
        [task] = h.sender.sent
        assert (task.name, task.args) == ("hookline.deliver", [[delivery_id]])
        assert task.options == {"queue": queue_for(row.endpoint_id, 8)}

    def test_requeueing_twice_requeues_nothing_the_second_time(self, harness: Harness,
                                                               tenant: Tenant) -> None:
        h = harness
        delivery_id = kill(h, tenant)
        requeue(h.sessions, h.dispatcher, ids=[delivery_id])
        messages = len(h.sender.sent)

        again = requeue(h.sessions, h.dispatcher, ids=[delivery_id])

        assert again.requeued == []
        assert again.not_dead == [delivery_id]
        assert len(h.sender.sent) == messages
        assert h.delivery(delivery_id).requeue_count == 1

    def test_all_with_a_reason_filter_requeues_only_that_reason(self, harness: Harness,
                                                                tenant: Tenant) -> None:
        h = harness
        exhausted = [kill(h, tenant, reason="exhausted") for _ in range(2)]
        rejected = kill(h, tenant, reason="permanent_4xx")

        report = requeue(h.sessions, h.dispatcher, select_all=True,
                         flt=DeadLetterFilter(reason="permanent_4xx"))

        assert report.requeued == [rejected]
        assert h.delivery(rejected).state == DeliveryState.PENDING
        for delivery_id in exhausted:
            assert h.delivery(delivery_id).state == DeliveryState.DEAD

    def test_all_without_a_filter_requeues_every_dead_letter(self, harness: Harness,
                                                             tenant: Tenant) -> None:
        h = harness
        dead = [kill(h, tenant, reason=r) for r in ("exhausted", "permanent_4xx")]
        alive = h.publish(tenant).delivery_ids[0]

        report = requeue(h.sessions, h.dispatcher, select_all=True)

        assert sorted(report.requeued) == sorted(dead)
        assert alive not in report.requeued
        assert all(h.delivery(i).state == DeliveryState.PENDING for i in dead)

    def test_a_filter_alone_is_a_selection(self, harness: Harness, tenant: Tenant) -> None:
        h = harness
        passes = h.endpoint(tenant, url="https://passes.example/hooks", events=["Pass:*"])
        on_passes = kill(h, tenant, event_type="Pass:Created", endpoint=passes)
        elsewhere = kill(h, tenant, event_type="crew.document.processed")

        report = requeue(h.sessions, h.dispatcher, flt=DeadLetterFilter(endpoint_id=passes.id))

        assert report.requeued == [on_passes]
        assert h.delivery(on_passes).state == DeliveryState.PENDING
        assert h.delivery(elsewhere).state == DeliveryState.DEAD

    def test_a_dry_run_changes_nothing(self, harness: Harness, tenant: Tenant) -> None:
        h = harness
        delivery_id = kill(h, tenant)
        h.sender.sent.clear()

        report = requeue(h.sessions, h.dispatcher, ids=[delivery_id], dry_run=True)

        assert report.dry_run
        assert report.requeued == [delivery_id]
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count, row.dead_reason) == (DeliveryState.DEAD, 8,
                                                                   "exhausted")
        assert row.requeue_count == 0
        assert h.sender.sent == []

    def test_a_dead_letter_of_a_disabled_endpoint_is_skipped(self, harness: Harness,
                                                             tenant: Tenant) -> None:
        h = harness
        delivery_id = kill(h, tenant)
        admin.set_endpoint_enabled(h.sessions, h.delivery(delivery_id).endpoint_id, False)
        h.sender.sent.clear()

        report = requeue(h.sessions, h.dispatcher, ids=[delivery_id])

        assert report.skipped_disabled == [delivery_id]
        assert report.requeued == []
        assert h.delivery(delivery_id).state == DeliveryState.DEAD
        assert h.sender.sent == []

    def test_a_broker_outage_parks_the_requeued_deliveries(self, harness: Harness,
                                                           tenant: Tenant) -> None:
        h = harness
        delivery_id = kill(h, tenant)
        h.sender.down = True

        report = requeue(h.sessions, h.dispatcher, ids=[delivery_id])

        assert report.requeued == [delivery_id]
        assert report.parked == [delivery_id]
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.PENDING
        assert row.queued_at is None

    def test_progress_is_reported_per_chunk(self, harness: Harness, tenant: Tenant) -> None:
        h = harness
        ids = [kill(h, tenant) for _ in range(3)]
        seen: list[int] = []
        requeue(h.sessions, h.dispatcher, ids=ids, progress=seen.append)
        assert seen == [3]


class TestInvalidSelection:
    """A requeue that does not say what to requeue, or names what does not exist, is refused."""

    def test_an_unknown_id_is_refused_by_name_and_nothing_moves(self, harness: Harness,
                                                                tenant: Tenant) -> None:
        h = harness
        delivery_id = kill(h, tenant)
        with pytest.raises(InvalidSelection, match="dlv_nope"):
            requeue(h.sessions, h.dispatcher, ids=[delivery_id, "dlv_nope"])
        assert h.delivery(delivery_id).state == DeliveryState.DEAD

    def test_no_ids_no_filter_and_no_all_is_refused(self, harness: Harness) -> None:
        with pytest.raises(InvalidSelection, match="--all"):
            requeue(harness.sessions, harness.dispatcher)

    def test_ids_together_with_all_are_refused(self, harness: Harness, tenant: Tenant) -> None:
        delivery_id = kill(harness, tenant)
        with pytest.raises(InvalidSelection, match="not both"):
            requeue(harness.sessions, harness.dispatcher, ids=[delivery_id], select_all=True)
        assert harness.delivery(delivery_id).state == DeliveryState.DEAD

    def test_an_unknown_reason_is_refused(self) -> None:
        with pytest.raises(InvalidSelection, match="bogus"):
            DeadLetterFilter(reason="bogus")

    @pytest.mark.parametrize("reason", [r.value for r in DeadReason])
    def test_every_known_reason_is_accepted(self, reason: str) -> None:
        assert DeadLetterFilter(reason=reason).reason == reason


class TestListDeadLetters:
    """Listing returns dead deliveries only, narrowed by the filter, oldest first."""

    def test_only_dead_deliveries_are_listed_with_their_details(self, harness: Harness,
                                                                tenant: Tenant) -> None:
        h = harness
        dead = kill(h, tenant, event_type="Pass:Created")
        h.publish(tenant)  # a live delivery

        [letter] = list_dead_letters(h.sessions, DeadLetterFilter())

        row = h.delivery(dead)
        assert letter.delivery_id == dead
        assert letter.event_id == row.event_id
        assert letter.event_type == "Pass:Created"
        assert letter.endpoint_id == row.endpoint_id
        assert letter.endpoint_url == "https://receiver.example/hooks"
        assert (letter.reason, letter.attempts) == ("exhausted", 8)
        assert (letter.last_status_code, letter.last_error) == (503, "HTTP 503")
        assert letter.dead_at == T0

    def test_filters_narrow_the_list(self, harness: Harness, tenant: Tenant) -> None:
        h = harness
        second = h.endpoint(tenant, url="https://second.example/hooks", events=["Pass:*"])
        old = kill(h, tenant, reason="exhausted", dead_at=T0 - timedelta(days=2))
        rejected = kill(h, tenant, reason="permanent_4xx", dead_at=T0 - timedelta(hours=1))
        pass_event = kill(h, tenant, event_type="Pass:Created", endpoint=second, dead_at=T0)

        def listed(**kwargs: Any) -> list[str]:
            flt = DeadLetterFilter(**kwargs)
            return [d.delivery_id for d in list_dead_letters(h.sessions, flt)]

        assert listed() == [old, rejected, pass_event]
        assert listed(endpoint_id=second.id) == [pass_event]
        assert listed(event_type="crew.document.processed") == [old, rejected]
        assert listed(reason="permanent_4xx") == [rejected]
        assert listed(since=T0 - timedelta(days=1)) == [rejected, pass_event]
        assert listed(tenant_id=tenant.id) == [old, rejected, pass_event]
        assert listed(tenant_id="tnt_other") == []

    def test_limit_caps_the_list(self, harness: Harness, tenant: Tenant) -> None:
        ids = [kill(harness, tenant, dead_at=T0 + timedelta(seconds=n)) for n in range(3)]
        letters = list_dead_letters(harness.sessions, DeadLetterFilter(), limit=2)
        assert [d.delivery_id for d in letters] == ids[:2]
