"""The delivery step: claim, send a signed attempt, record the outcome and the follow-ups."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app import admin
from app.classification import TransportError
from app.engine import DeliveryEngine, ScheduledRetry
from app.models import DeadReason, DeliveryState, Endpoint
from app.transport import HttpResult
from tests.unit.conftest import (
    T0,
    FixedClock,
    Harness,
    ScriptedTransport,
    http,
    transport_error,
)

UNIX_NOW = 1780912800


def never(a: float, b: float) -> float:
    raise AssertionError("jitter is off: the random source must not be used")


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(retry_jitter=0, retry_base_seconds=1, broker_countdown_max=10)


def service(h: Harness, *results: HttpResult) -> tuple[DeliveryEngine, ScriptedTransport]:
    transport = ScriptedTransport(*results)
    return DeliveryEngine(h.settings, h.engine, transport, clock=FixedClock(T0),
                           unix_time=lambda: float(UNIX_NOW), uniform=never), transport


def one_delivery(h: Harness, **endpoint_options: Any) -> tuple[str, Endpoint]:
    """A tenant, one endpoint for everything, and one published delivery to it."""
    tenant = h.tenant()
    endpoint = h.endpoint(tenant, **endpoint_options)
    [delivery_id] = h.publish(tenant).delivery_ids
    return delivery_id, endpoint


class TestSuccess:
    """A 2xx records the attempt and marks the delivery succeeded."""

    def test_a_200_records_an_attempt_and_marks_the_delivery_succeeded(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        run, _ = service(h, http(200, body="ok"))

        outcome = run.run([delivery_id])

        assert outcome.succeeded == [delivery_id]
        assert (outcome.retries, outcome.parked, outcome.dead, outcome.skipped) == ([], [], [], [])
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.SUCCEEDED
        assert row.succeeded_at == T0
        assert row.attempt_count == 1
        assert row.last_status_code == 200
        assert row.last_error is None
        assert row.lease_expires_at is None
        [attempt] = h.attempts(delivery_id)
        assert attempt.attempt_number == 1
        assert attempt.status_code == 200
        assert attempt.started_at == T0
        assert attempt.duration_ms == 12.5
        assert attempt.response_excerpt == "ok"
        assert attempt.error_message is None

    def test_the_request_is_a_signed_crewpass_post_to_the_endpoint(self, h: Harness) -> None:
        delivery_id, endpoint = one_delivery(h, url="https://receiver.example/crew")
        run, transport = service(h, http(204))
        run.run([delivery_id])

        [request] = transport.calls
        assert request.url == "https://receiver.example/crew"
        assert request.timeout == (5.0, 30.0)
        assert request.headers["X-CrewPass-Timestamp"] == str(UNIX_NOW)
        expected = hmac.new(endpoint.secret.encode(), f"{UNIX_NOW}.".encode() + request.body,
                            hashlib.sha256).hexdigest()
        assert request.headers["X-CrewPass-Signature"] == "v1=" + expected
        assert b'"data":{"crew_id":"crw_1","status":"verified"}' in request.body

    def test_the_endpoint_read_timeout_wins(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h, timeout_seconds=2.5)
        run, transport = service(h, http(200))
        run.run([delivery_id])
        assert transport.calls[0].timeout == (5.0, 2.5)

    def test_a_batch_is_claimed_and_recorded_with_one_request_each(self, h: Harness) -> None:
        tenant = h.tenant()
        urls = [f"https://receiver.example/{n}" for n in range(3)]
        for url in urls:
            h.endpoint(tenant, url=url)
        ids = h.publish(tenant).delivery_ids + h.publish(tenant).delivery_ids
        run, transport = service(h, *[http(200)] * 6)

        outcome = run.run(ids)

        assert outcome.succeeded == ids
        assert len(transport.calls) == 6
        assert sorted(c.url for c in transport.calls) == sorted(urls * 2)
        for delivery_id in ids:
            assert h.delivery(delivery_id).state == DeliveryState.SUCCEEDED
            assert [a.status_code for a in h.attempts(delivery_id)] == [200]


class TestRetry:
    """A retryable failure schedules the next attempt, on the broker or parked in SQL."""

    def test_a_503_schedules_a_retry_after_the_base_delay(self, h: Harness) -> None:
        delivery_id, endpoint = one_delivery(h)
        run, _ = service(h, http(503))

        outcome = run.run([delivery_id])

        assert outcome.retries == [ScheduledRetry(delivery_id, endpoint.id, 1.0)]
        assert outcome.parked == [] and outcome.dead == []
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.RETRY_SCHEDULED
        assert row.next_attempt_at == T0 + timedelta(seconds=1)
        assert row.queued_at == T0
        assert row.last_status_code == 503
        assert row.last_error == "HTTP 503"
        assert row.lease_expires_at is None
        assert [a.status_code for a in h.attempts(delivery_id)] == [503]

    @pytest.mark.parametrize(
        ("result", "error"),
        [(transport_error(TransportError.CONNECT), "ConnectionError: connection refused"),
         (transport_error(TransportError.TIMEOUT, "ReadTimeout", "timed out"),
          "ReadTimeout: timed out"),
         (http(429), "HTTP 429"), (http(302), "HTTP 302")],
        ids=["connect", "timeout", "429", "redirect"],
    )
    def test_transport_errors_and_retryable_statuses_are_retried(
        self, h: Harness, result: HttpResult, error: str
    ) -> None:
        delivery_id, _ = one_delivery(h)
        run, _ = service(h, result)
        outcome = run.run([delivery_id])
        assert [r.delivery_id for r in outcome.retries] == [delivery_id]
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.RETRY_SCHEDULED
        assert row.last_error == error
        [attempt] = h.attempts(delivery_id)
        assert attempt.error_message == (error if result.status is None else "HTTP " +
                                         str(result.status))

    def test_the_delay_grows_with_the_attempt_number(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, attempt_count=1)  # this is the second attempt: 1 * 4
        run, _ = service(h, http(500))
        outcome = run.run([delivery_id])
        assert [r.countdown for r in outcome.retries] == [4.0]
        assert h.delivery(delivery_id).next_attempt_at == T0 + timedelta(seconds=4)

    def test_a_delay_beyond_the_broker_countdown_max_is_parked_in_sql(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, attempt_count=2)  # third attempt: 1 * 4**2 = 16 s > 10 s
        run, _ = service(h, http(503))

        outcome = run.run([delivery_id])

        assert outcome.parked == [delivery_id]
        assert outcome.retries == []
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.RETRY_SCHEDULED
        assert row.queued_at is None
        assert row.next_attempt_at == T0 + timedelta(seconds=16)

    @pytest.mark.parametrize(
        ("header", "value", "delay", "in_broker"),
        [("Retry-After", "7", 7.0, True), ("retry-after", "3", 3.0, True),
         ("Retry-After", "30", 30.0, False), ("Retry-After", "0", 1.0, True),
         ("Retry-After", "whenever", 1.0, True), ("Retry-After", "\u00b2", 1.0, True)],
        ids=["seconds", "lowercase-header", "long-is-parked", "clamped-to-1s", "garbage-ignored",
             "non-ascii-digit-ignored"],
    )
    def test_retry_after_is_honoured(self, h: Harness, header: str, value: str, delay: float,
                                     in_broker: bool) -> None:
        delivery_id, endpoint = one_delivery(h)
        run, _ = service(h, http(429, {header: value}))

        outcome = run.run([delivery_id])

        row = h.delivery(delivery_id)
        assert row.next_attempt_at == T0 + timedelta(seconds=delay)
        if in_broker:
            assert outcome.retries == [ScheduledRetry(delivery_id, endpoint.id, delay)]
            assert row.queued_at == T0
        else:
            assert outcome.parked == [delivery_id]
            assert row.queued_at is None


    def test_a_retry_after_date_is_measured_from_the_service_clock(self, h: Harness) -> None:
        delivery_id, endpoint = one_delivery(h)
        # T0 is 2030-01-01 12:00:00 UTC; the receiver asks for 8 seconds later.
        run, _ = service(h, http(503, {"Retry-After": "Tue, 01 Jan 2030 12:00:08 GMT"}))

        outcome = run.run([delivery_id])

        assert outcome.retries == [ScheduledRetry(delivery_id, endpoint.id, 8.0)]
        assert h.delivery(delivery_id).next_attempt_at == T0 + timedelta(seconds=8)


class TestDeadLetters:
    """Permanent failures and an exhausted budget dead-letter the delivery."""

    @pytest.mark.parametrize("status", [400, 401, 404, 422])
    def test_a_4xx_is_dead_at_once_without_a_retry(self, h: Harness, status: int) -> None:
        delivery_id, endpoint = one_delivery(h)
        run, _ = service(h, http(status))

        outcome = run.run([delivery_id])

        assert outcome.dead == [(delivery_id, DeadReason.PERMANENT_4XX)]
        assert outcome.retries == [] and outcome.parked == []
        row = h.delivery(delivery_id)
        assert row.state == DeliveryState.DEAD
        assert row.dead_reason == "permanent_4xx"
        assert row.dead_at == T0
        assert row.last_status_code == status
        assert [a.status_code for a in h.attempts(delivery_id)] == [status]
        assert h.endpoint_row(endpoint.id).enabled

    def test_an_unsendable_request_is_dead_as_a_permanent_error(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        run, _ = service(h, transport_error(TransportError.INVALID_REQUEST, "InvalidURL", "bad"))
        outcome = run.run([delivery_id])
        assert outcome.dead == [(delivery_id, DeadReason.PERMANENT_ERROR)]
        row = h.delivery(delivery_id)
        assert (row.state, row.dead_reason) == (DeliveryState.DEAD, "permanent_error")
        assert row.last_error == "InvalidURL: bad"

    def test_a_blocked_destination_is_dead_at_once_and_never_retried(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        run, transport = service(h, transport_error(
            TransportError.BLOCKED, "BlockedDestination",
            "destination refused: receiver.example resolves to 10.0.0.5, which is a private address"))
        outcome = run.run([delivery_id])
        assert outcome.dead == [(delivery_id, DeadReason.BLOCKED_DESTINATION)]
        assert outcome.retries == [] and outcome.parked == []
        row = h.delivery(delivery_id)
        assert (row.state, row.dead_reason, row.attempt_count) == (
            DeliveryState.DEAD, "blocked_destination", 1)
        assert row.last_error is not None and "10.0.0.5" in row.last_error
        assert len(transport.calls) == 1 and len(h.attempts(delivery_id)) == 1

    def test_a_410_disables_the_endpoint_and_dead_letters_the_rest_of_the_batch(
        self, h: Harness
    ) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant)
        first = h.publish(tenant).delivery_ids[0]
        second = h.publish(tenant).delivery_ids[0]
        run, transport = service(h, http(410))

        outcome = run.run([first, second])

        assert len(transport.calls) == 1
        assert outcome.dead == [(first, DeadReason.PERMANENT_4XX),
                                (second, DeadReason.ENDPOINT_DISABLED)]
        assert h.delivery(first).dead_reason == "permanent_4xx"
        assert h.delivery(first).last_status_code == 410
        assert h.delivery(second).state == DeliveryState.DEAD
        assert h.delivery(second).dead_reason == "endpoint_disabled"
        assert h.attempts(second) == []
        row = h.endpoint_row(endpoint.id)
        assert not row.enabled
        assert row.disabled_reason == "disabled after HTTP 410"

    def test_a_delivery_to_a_disabled_endpoint_is_dead_without_a_request(self,
                                                                          h: Harness) -> None:
        delivery_id, endpoint = one_delivery(h)
        admin.set_endpoint_enabled(h.sessions, endpoint.id, False)
        run, transport = service(h)

        outcome = run.run([delivery_id])

        assert transport.calls == []
        assert outcome.dead == [(delivery_id, DeadReason.ENDPOINT_DISABLED)]
        assert h.delivery(delivery_id).dead_reason == "endpoint_disabled"

    @pytest.mark.parametrize(("endpoint_max", "attempts_before"), [(None, 7), (2, 1), (1, 0)])
    def test_a_failing_last_attempt_is_dead_exhausted(self, h: Harness,
                                                      endpoint_max: int | None,
                                                      attempts_before: int) -> None:
        delivery_id, _ = one_delivery(h, max_attempts=endpoint_max)
        h.set_delivery(delivery_id, attempt_count=attempts_before,
                       state=DeliveryState.RETRY_SCHEDULED)
        run, transport = service(h, http(503))

        outcome = run.run([delivery_id])

        assert len(transport.calls) == 1
        assert outcome.dead == [(delivery_id, DeadReason.EXHAUSTED)]
        assert outcome.retries == [] and outcome.parked == []
        row = h.delivery(delivery_id)
        assert (row.state, row.dead_reason) == (DeliveryState.DEAD, "exhausted")
        assert row.last_status_code == 503
        assert [a.attempt_number for a in h.attempts(delivery_id)] == [attempts_before + 1]

    def test_the_next_to_last_attempt_still_retries(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, attempt_count=6)
        run, _ = service(h, http(503))
        outcome = run.run([delivery_id])
        assert outcome.dead == []
        assert h.delivery(delivery_id).state == DeliveryState.RETRY_SCHEDULED

    def test_a_poison_delivery_over_its_budget_is_dead_without_a_request(self,
                                                                         h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, attempt_count=h.settings.max_attempts,
                       state=DeliveryState.RETRY_SCHEDULED, next_attempt_at=T0)
        run, transport = service(h)

        outcome = run.run([delivery_id])

        assert transport.calls == []
        assert outcome.dead == [(delivery_id, DeadReason.EXHAUSTED)]
        row = h.delivery(delivery_id)
        assert (row.state, row.dead_reason) == (DeliveryState.DEAD, "exhausted")
        assert h.attempts(delivery_id) == []


class TestSkipping:
    """Only due deliveries in a claimable state are sent; the rest are skipped untouched."""

    def test_a_delivery_not_yet_due_is_skipped(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, next_attempt_at=T0 + timedelta(hours=1))
        run, transport = service(h)

        outcome = run.run([delivery_id])

        assert outcome.skipped == [delivery_id]
        assert transport.calls == []
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (DeliveryState.PENDING, 0)

    def test_a_delivery_due_within_the_clock_skew_is_taken(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, next_attempt_at=T0 + timedelta(milliseconds=500))
        run, _ = service(h, http(200))
        assert run.run([delivery_id]).succeeded == [delivery_id]

    @pytest.mark.parametrize("state", [DeliveryState.SUCCEEDED, DeliveryState.DEAD,
                                       DeliveryState.IN_FLIGHT])
    def test_a_delivery_in_a_final_or_busy_state_is_skipped(self, h: Harness,
                                                            state: DeliveryState) -> None:
        delivery_id, _ = one_delivery(h)
        h.set_delivery(delivery_id, state=state, attempt_count=1)
        run, transport = service(h)

        outcome = run.run([delivery_id])

        assert outcome.skipped == [delivery_id]
        assert transport.calls == []
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (state, 1)
        assert h.attempts(delivery_id) == []

    def test_a_duplicate_message_after_success_sends_nothing(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        run, transport = service(h, http(200))
        run.run([delivery_id])
        assert run.run([delivery_id]).skipped == [delivery_id]
        assert len(transport.calls) == 1

    def test_an_unknown_id_is_skipped_and_the_rest_are_sent(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        run, transport = service(h, http(200))
        outcome = run.run(["dlv_missing", delivery_id])
        assert outcome.skipped == ["dlv_missing"]
        assert outcome.succeeded == [delivery_id]
        assert len(transport.calls) == 1


class TestPark:
    """park() forgets the broker message so the sweeper sends a new one."""

    def test_park_clears_queued_at(self, h: Harness) -> None:
        delivery_id, _ = one_delivery(h)
        run, _ = service(h)
        assert h.delivery(delivery_id).queued_at is not None
        run.park([delivery_id])
        assert h.delivery(delivery_id).queued_at is None
