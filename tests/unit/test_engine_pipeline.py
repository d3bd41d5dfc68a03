"""The delivery engine end to end: per-delivery guards, conditional records, the circuit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app.engine import DeliveryEngine, ScheduledRetry
from app.engine import claim as claim_module
from app.engine.claim import EndpointRow
from app.engine.send import Deferred, OutgoingRequest, SendResult
from app.models import DeadReason, DeliveryState, Endpoint
from app.transport import HttpResult
from tests.unit.conftest import T0, FixedClock, Harness, ScriptedTransport, SentRequest, http

UNIX_NOW = 1780912800
#: A probe counts as lost after connect + read timeout + a lease (defaults: 5 + 30 + 15).
PROBE_SECONDS = 50.0
#: While a probe is under way, the endpoint's other deliveries look again this soon.
PROBE_WAIT = timedelta(seconds=2)


def lowest(a: float, b: float) -> float:
    return a


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(retry_jitter=0, retry_base_seconds=1, broker_countdown_max=60,
                        circuit_failure_threshold=2, circuit_cooloff_seconds=15,
                        circuit_max_cooloff_seconds=600)


def engine(h: Harness, transport: Any, clock: FixedClock | None = None) -> DeliveryEngine:
    return DeliveryEngine(h.settings, h.engine, transport, clock=clock or FixedClock(T0),
                          unix_time=lambda: float(UNIX_NOW), uniform=lowest)


def set_endpoint(h: Harness, endpoint_id: str, **values: Any) -> None:
    """Change an endpoint's row in SQL, past the validation of app.admin."""
    with h.engine.begin() as conn:
        conn.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(**values))


def deliveries(h: Harness, count: int, url: str = "https://receiver.example/hooks"
               ) -> tuple[list[str], Endpoint]:
    """A tenant with one endpoint at *url* and *count* published deliveries to it."""
    tenant = h.tenant()
    endpoint = h.endpoint(tenant, url=url)
    return [h.publish(tenant).delivery_ids[0] for _ in range(count)], endpoint


def endpoint_rows(h: Harness, endpoint_id: str) -> list[Any]:
    """The endpoint's row as the claim step reads it."""
    with h.engine.connect() as conn:
        return list(conn.execute(select(*claim_module._ENDPOINT_COLUMNS)
                                 .where(Endpoint.id == endpoint_id)))


class DuringFailed(BaseException):
    """What a test does during a request failed (a BaseException: the engine must not hide it)."""


class CallbackTransport:
    """A receiver that runs *during* each request, then answers like a scripted one."""

    def __init__(self, during: Callable[[str], None], *results: HttpResult) -> None:
        self.during = during
        self.scripted = ScriptedTransport(*results)

    @property
    def calls(self) -> list[SentRequest]:
        return self.scripted.calls

    def send(self, url: str, body: bytes, headers: Mapping[str, str],
             timeout: tuple[float, float]) -> HttpResult:
        try:
            self.during(url)
        except Exception as exc:
            raise DuringFailed(f"{type(exc).__name__}: {exc}") from exc
        return self.scripted.send(url, body, headers, timeout)


class RaisingTransport:
    """A receiver whose transport raises for URLs under *broken*, and answers 200 otherwise."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        self.scripted = ScriptedTransport(http(200))

    def send(self, url: str, body: bytes, headers: Mapping[str, str],
             timeout: tuple[float, float]) -> HttpResult:
        if url.startswith(self.broken):
            raise RuntimeError("transport bug")
        return self.scripted.send(url, body, headers, timeout)


class TestOneBadDeliveryNeverHarmsTheBatch:
    """A delivery that cannot be rendered, sent or judged fails alone; the batch goes on."""

    @pytest.mark.parametrize(
        ("values", "error_class"),
        [({"headers": {"X-Team": "雪"}}, "UnicodeEncodeError"),
         ({"headers": {"X-Team": "a\r\nX-Injected: 1"}}, "ValueError"),
         ({"headers": {"X-Team": "a\x00b"}}, "ValueError"),
         ({"contract": "no-such-contract"}, "InvalidEndpointConfig")],
        ids=["not-latin-1", "line-break", "nul", "unknown-contract"],
    )
    def test_an_unrenderable_delivery_is_dead_and_the_other_tenant_s_is_sent_once(
        self, h: Harness, values: dict[str, Any], error_class: str
    ) -> None:
        [bad], bad_endpoint = deliveries(h, 1, "https://a.receiver.example/hooks")
        [good], _ = deliveries(h, 1, "https://b.receiver.example/hooks")
        set_endpoint(h, bad_endpoint.id, **values)
        transport = ScriptedTransport(http(200))

        outcome = engine(h, transport).run([bad, good])

        assert [c.url for c in transport.calls] == ["https://b.receiver.example/hooks"]
        assert outcome.succeeded == [good]
        assert outcome.dead == [(bad, DeadReason.PERMANENT_ERROR)]
        assert h.delivery(good).state == DeliveryState.SUCCEEDED
        assert [a.status_code for a in h.attempts(good)] == [200]
        row = h.delivery(bad)
        assert (row.state, row.dead_reason, row.attempt_count) == (
            DeliveryState.DEAD, "permanent_error", 1)
        assert row.last_error is not None and row.last_error.startswith(error_class + ": ")
        [attempt] = h.attempts(bad)
        assert (attempt.attempt_number, attempt.status_code, attempt.error_class) == (
            1, None, error_class)

    def test_a_transport_that_raises_fails_that_attempt_only_and_it_is_retried(
        self, h: Harness
    ) -> None:
        [bad], _ = deliveries(h, 1, "https://a.receiver.example/hooks")
        [good], _ = deliveries(h, 1, "https://b.receiver.example/hooks")

        outcome = engine(h, RaisingTransport("https://a.")).run([bad, good])

        assert outcome.succeeded == [good]
        assert [r.delivery_id for r in outcome.retries] == [bad]
        assert outcome.dead == []
        row = h.delivery(bad)
        assert (row.state, row.attempt_count) == (DeliveryState.RETRY_SCHEDULED, 1)
        assert row.last_error == "RuntimeError: transport bug"
        assert row.next_attempt_at == T0 + timedelta(seconds=1)
        [attempt] = h.attempts(bad)
        assert (attempt.status_code, attempt.error_class) == (None, "RuntimeError")
        assert h.delivery(good).state == DeliveryState.SUCCEEDED

    def test_a_sender_that_raises_for_the_whole_batch_fails_each_attempt_for_a_retry(
        self, h: Harness
    ) -> None:
        ids, _ = deliveries(h, 2)

        class Broken:
            def send_many(self, requests: Sequence[OutgoingRequest], skip: Any = None,
                          seen: Any = None) -> list[SendResult]:
                raise RuntimeError("event loop gone")

            def close(self) -> None:
                return None

        outcome = engine(h, Broken()).run(ids)

        assert [r.delivery_id for r in outcome.retries] == ids
        for delivery_id in ids:
            assert h.delivery(delivery_id).state == DeliveryState.RETRY_SCHEDULED
            [attempt] = h.attempts(delivery_id)
            assert attempt.error_class == "RuntimeError"

    @pytest.mark.parametrize(
        ("value", "delay"),
        [("²", 1.0), ("١٢", 1.0), ("1e9", 1.0), ("-5", 1.0), ("9" * 10, 3600.0),
         ("9" * 20, 1.0), ("", 1.0), ("12 seconds", 1.0),
         ("Mon, 99 Foo 2030 99:99:99 GMT", 1.0), ("Fri, 31 Dec 99999 23:59:59 GMT", 1.0)],
        ids=["superscript-two", "arabic-indic-digits", "exponent", "negative",
             "ten-digits-clamped", "twenty-digits-ignored", "empty", "with-unit", "bad-date",
             "year-out-of-range"],
    )
    def test_a_junk_retry_after_is_recorded_and_retried_like_any_503(
        self, h: Harness, value: str, delay: float
    ) -> None:
        [junk, control], _ = deliveries(h, 2)
        transport = ScriptedTransport(http(503, {"Retry-After": value}), http(200))

        outcome = engine(h, transport).run([junk, control])

        assert outcome.succeeded == [control]
        assert outcome.dead == []
        row = h.delivery(junk)
        assert row.state == DeliveryState.RETRY_SCHEDULED
        assert (row.last_status_code, row.last_error) == (503, "HTTP 503")
        assert row.next_attempt_at == T0 + timedelta(seconds=delay)
        assert [a.status_code for a in h.attempts(junk)] == [503]


class TestRecordsAreConditionalOnTheClaimedAttempt:
    """A worker whose delivery was taken over meanwhile writes its attempt, not its outcome."""

    @staticmethod
    def take_over(h: Harness, delivery_id: str) -> Callable[[str], None]:
        """During the request, a second worker claims the delivery again, as claim() would."""

        def during(_url: str) -> None:
            h.set_delivery(delivery_id, state=DeliveryState.IN_FLIGHT,
                           attempt_count=h.delivery(delivery_id).attempt_count + 1,
                           updated_at=T0 + timedelta(seconds=90),
                           lease_expires_at=T0 + timedelta(seconds=160))

        return during

    @pytest.mark.parametrize("result", [http(200), http(503), http(400)],
                             ids=["succeeded", "retry", "dead"])
    def test_the_outcome_of_a_taken_over_delivery_is_not_written(
        self, h: Harness, result: HttpResult
    ) -> None:
        [delivery_id], _ = deliveries(h, 1)
        transport = CallbackTransport(self.take_over(h, delivery_id), result)

        outcome = engine(h, transport).run([delivery_id])

        assert outcome.superseded == [delivery_id]
        assert (outcome.succeeded, outcome.retries, outcome.parked, outcome.dead) == (
            [], [], [], [])
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (DeliveryState.IN_FLIGHT, 2)
        assert row.lease_expires_at == T0 + timedelta(seconds=160)
        assert row.last_status_code is None and row.dead_reason is None
        assert [(a.attempt_number, a.status_code) for a in h.attempts(delivery_id)] == [
            (1, result.status)]

    def test_the_rest_of_the_batch_is_written_as_usual(self, h: Harness) -> None:
        [taken, kept], _ = deliveries(h, 2)
        takeover = self.take_over(h, taken)
        calls: list[str] = []

        def during(url: str) -> None:
            calls.append(url)
            if len(calls) == 1:
                takeover(url)

        outcome = engine(h, CallbackTransport(during, http(200), http(200))).run([taken, kept])

        assert outcome.superseded == [taken]
        assert outcome.succeeded == [kept]
        assert h.delivery(taken).state == DeliveryState.IN_FLIGHT
        assert h.delivery(kept).state == DeliveryState.SUCCEEDED


class TestCircuit:
    """Failures in a row open an endpoint's circuit; it defers, then probes, then closes."""

    def open_circuit(self, h: Harness, clock: FixedClock) -> tuple[str, Endpoint]:
        """Two 503s in two batches (the threshold is 2); returns the tenant id and endpoint."""
        ids, endpoint = deliveries(h, 2)
        run = engine(h, ScriptedTransport(http(503), http(503)), clock)
        run.run(ids[:1])
        row = h.endpoint_row(endpoint.id)
        assert (row.circuit_state, row.circuit_failures) == ("closed", 1)
        run.run(ids[1:])
        return endpoint.tenant_id, endpoint

    def test_the_threshold_failure_opens_the_circuit_on_the_endpoint_row(
        self, h: Harness
    ) -> None:
        _, endpoint = self.open_circuit(h, FixedClock(T0))
        row = h.endpoint_row(endpoint.id)
        assert (row.circuit_state, row.circuit_failures) == ("open", 2)
        assert row.circuit_cooloff_seconds == 15
        assert row.circuit_retry_at == T0 + timedelta(seconds=15)

    def test_failures_within_one_batch_count_too(self, h: Harness) -> None:
        ids, endpoint = deliveries(h, 2)
        engine(h, ScriptedTransport(http(503), http(500))).run(ids)
        assert h.endpoint_row(endpoint.id).circuit_state == "open"

    def test_rejections_do_not_count_towards_opening_it(self, h: Harness) -> None:
        ids, endpoint = deliveries(h, 3)
        engine(h, ScriptedTransport(http(503), http(400), http(503))).run(ids)
        row = h.endpoint_row(endpoint.id)
        assert (row.circuit_state, row.circuit_failures) == ("closed", 1)

    def test_while_open_a_new_delivery_is_deferred_without_a_request(self,
                                                                     h: Harness) -> None:
        clock = FixedClock(T0)
        tenant_id, endpoint = self.open_circuit(h, clock)
        clock.advance(5)
        [delivery_id] = h.publish(tenant_id).delivery_ids
        transport = ScriptedTransport()

        outcome = engine(h, transport, clock).run([delivery_id])

        assert transport.calls == []
        assert outcome.deferred == [delivery_id]
        assert outcome.retries == [ScheduledRetry(delivery_id, endpoint.id, 10.0)]
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (DeliveryState.PENDING, 0)
        assert row.next_attempt_at == T0 + timedelta(seconds=15)
        assert row.lease_expires_at is None
        assert h.attempts(delivery_id) == []

    def test_while_open_a_retry_is_deferred_and_keeps_its_attempt_count(self,
                                                                        h: Harness) -> None:
        clock = FixedClock(T0)
        tenant_id, _ = self.open_circuit(h, clock)
        [delivery_id] = h.publish(tenant_id).delivery_ids
        h.set_delivery(delivery_id, state=DeliveryState.RETRY_SCHEDULED, attempt_count=3)
        clock.advance(5)

        outcome = engine(h, ScriptedTransport(), clock).run([delivery_id])

        assert outcome.deferred == [delivery_id]
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (DeliveryState.RETRY_SCHEDULED, 3)
        assert row.next_attempt_at == T0 + timedelta(seconds=15)

    def test_after_the_cool_off_one_delivery_probes_and_a_success_closes_it(
        self, h: Harness
    ) -> None:
        clock = FixedClock(T0)
        tenant_id, endpoint = self.open_circuit(h, clock)
        clock.advance(15)
        probe = h.publish(tenant_id).delivery_ids[0]
        waiting = h.publish(tenant_id).delivery_ids[0]
        seen: list[tuple[str, Any]] = []

        def during(_url: str) -> None:
            row = h.endpoint_row(endpoint.id)
            seen.append((row.circuit_state, row.circuit_retry_at))

        transport = CallbackTransport(during, http(200))

        outcome = engine(h, transport, clock).run([probe, waiting])

        assert len(transport.calls) == 1
        assert seen == [("half_open", clock.now + timedelta(seconds=PROBE_SECONDS))]
        assert outcome.succeeded == [probe]
        assert outcome.deferred == [waiting]
        row = h.endpoint_row(endpoint.id)
        assert (row.circuit_state, row.circuit_failures, row.circuit_retry_at) == (
            "closed", 0, None)
        waited = h.delivery(waiting)
        assert (waited.state, waited.attempt_count) == (DeliveryState.PENDING, 0)
        assert waited.next_attempt_at == clock.now + PROBE_WAIT

    def test_a_failed_probe_reopens_it_for_twice_the_cool_off(self, h: Harness) -> None:
        clock = FixedClock(T0)
        tenant_id, endpoint = self.open_circuit(h, clock)
        clock.advance(20)
        [delivery_id] = h.publish(tenant_id).delivery_ids

        engine(h, ScriptedTransport(http(503)), clock).run([delivery_id])

        row = h.endpoint_row(endpoint.id)
        assert (row.circuit_state, row.circuit_cooloff_seconds) == ("open", 30)
        assert row.circuit_retry_at == clock.now + timedelta(seconds=30)
        assert [a.status_code for a in h.attempts(delivery_id)] == [503]

    def test_only_one_worker_of_the_fleet_takes_the_probe(self, h: Harness) -> None:
        clock = FixedClock(T0)
        tenant_id, _ = self.open_circuit(h, clock)
        clock.advance(15)
        probe = h.publish(tenant_id).delivery_ids[0]
        other = h.publish(tenant_id).delivery_ids[0]
        second_worker = ScriptedTransport()
        results: list[Any] = []

        def during(_url: str) -> None:
            results.append(engine(h, second_worker, clock).run([other]))

        engine(h, CallbackTransport(during, http(200)), clock).run([probe])

        assert second_worker.calls == []
        assert results[0].deferred == [other]
        assert h.delivery(other).next_attempt_at == clock.now + PROBE_WAIT

    def test_two_workers_that_both_read_the_open_circuit_take_one_probe(
        self, h: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = FixedClock(T0)
        tenant_id, endpoint = self.open_circuit(h, clock)
        clock.advance(15)
        probe = h.publish(tenant_id).delivery_ids[0]
        other = h.publish(tenant_id).delivery_ids[0]
        read_fresh = claim_module._endpoint
        [stale] = [read_fresh(row) for row in endpoint_rows(h, endpoint.id)]
        assert stale.circuit.probe_due(clock.now)

        def read_before_the_probe_started(row: Any) -> EndpointRow:
            """Both workers read the endpoint before either took the probe."""
            return replace(read_fresh(row), circuit=stale.circuit)

        second_worker = ScriptedTransport()

        def during(_url: str) -> None:
            with monkeypatch.context() as patch:
                patch.setattr(claim_module, "_endpoint", read_before_the_probe_started)
                engine(h, second_worker, clock).run([other])

        engine(h, CallbackTransport(during, http(200)), clock).run([probe])

        assert second_worker.calls == []
        assert h.delivery(other).attempt_count == 0
        assert h.attempts(other) == []

    def test_a_probe_under_way_elsewhere_defers_to_look_again_shortly(self,
                                                                        h: Harness) -> None:
        [delivery_id], endpoint = deliveries(h, 1)
        set_endpoint(h, endpoint.id, circuit_state="half_open", circuit_failures=2,
                     circuit_cooloff_seconds=15, circuit_retry_at=T0 + timedelta(seconds=40))
        transport = ScriptedTransport()

        outcome = engine(h, transport).run([delivery_id])

        assert transport.calls == []
        assert outcome.deferred == [delivery_id]
        assert h.delivery(delivery_id).next_attempt_at == T0 + PROBE_WAIT

    def test_a_failure_from_a_batch_claimed_before_the_circuit_opened_keeps_it_open(
        self, h: Harness
    ) -> None:
        [slow, *others], endpoint = deliveries(h, 3)

        def meanwhile(_url: str) -> None:  # another worker's batch opens the circuit
            engine(h, ScriptedTransport(http(503), http(503))).run(others)
            assert h.endpoint_row(endpoint.id).circuit_state == "open"

        engine(h, CallbackTransport(meanwhile, http(503))).run([slow])

        row = h.endpoint_row(endpoint.id)
        assert row.circuit_state == "open"
        assert row.circuit_retry_at == T0 + timedelta(seconds=15)

    def test_failures_recorded_by_concurrent_batches_add_up(self, h: Harness) -> None:
        [first, second], endpoint = deliveries(h, 2)

        def meanwhile(_url: str) -> None:
            engine(h, ScriptedTransport(http(503))).run([second])

        engine(h, CallbackTransport(meanwhile, http(503))).run([first])

        row = h.endpoint_row(endpoint.id)
        assert (row.circuit_state, row.circuit_failures) == ("open", 2)


class TestDeferredIsNotAnAttempt:
    """A delivery deferred without a request keeps its budget, even at its last attempt."""

    def last_attempt(self, h: Harness) -> tuple[str, Endpoint]:
        [delivery_id], endpoint = deliveries(h, 1)
        h.set_delivery(delivery_id, state=DeliveryState.RETRY_SCHEDULED,
                       attempt_count=h.settings.max_attempts - 1)
        return delivery_id, endpoint

    def test_an_open_circuit_defers_a_last_attempt_instead_of_dead_lettering_it(
        self, h: Harness
    ) -> None:
        delivery_id, endpoint = self.last_attempt(h)
        set_endpoint(h, endpoint.id, circuit_state="open", circuit_failures=2,
                     circuit_cooloff_seconds=15, circuit_retry_at=T0 + timedelta(seconds=15))
        clock = FixedClock(T0)

        outcome = engine(h, ScriptedTransport(), clock).run([delivery_id])

        assert outcome.dead == [] and outcome.deferred == [delivery_id]
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (
            DeliveryState.RETRY_SCHEDULED, h.settings.max_attempts - 1)
        assert row.dead_reason is None
        assert h.attempts(delivery_id) == []

        clock.advance(15)  # the probe is the real last attempt
        outcome = engine(h, ScriptedTransport(http(503)), clock).run([delivery_id])

        assert outcome.dead == [(delivery_id, DeadReason.EXHAUSTED)]
        assert [a.attempt_number for a in h.attempts(delivery_id)] == [h.settings.max_attempts]

    def test_a_busy_endpoint_defers_a_last_attempt_instead_of_dead_lettering_it(
        self, h: Harness
    ) -> None:
        delivery_id, endpoint = self.last_attempt(h)

        class Busy:
            def send_many(self, requests: Sequence[OutgoingRequest], skip: Any = None,
                          seen: Any = None) -> list[SendResult]:
                return [Deferred("endpoint busy") for _ in requests]

            def close(self) -> None:
                return None

        outcome = engine(h, Busy()).run([delivery_id])

        assert outcome.dead == [] and outcome.deferred == [delivery_id]
        row = h.delivery(delivery_id)
        assert (row.state, row.attempt_count) == (
            DeliveryState.RETRY_SCHEDULED, h.settings.max_attempts - 1)
        assert row.next_attempt_at == T0 + timedelta(seconds=1)
        assert h.attempts(delivery_id) == []
        assert h.endpoint_row(endpoint.id).circuit_failures == 0
