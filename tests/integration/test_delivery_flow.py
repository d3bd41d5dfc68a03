"""End to end on real PostgreSQL, Redis, worker processes and a loopback receiver; the
core flows (delivery, retry, dead letter, requeue) on RabbitMQ too."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from app import admin
from app.cli import cli
from app.receiver import Receiver, Route
from tests.integration.conftest import BROKERS, Stack
from tests.support import crewpass_signature_ok, wait_until

pytestmark = pytest.mark.integration


def subscribe(stack: Stack, receiver: Receiver, path: str, route: Route | None = None,
              events: tuple[str, ...] = ("*",), **options: object) -> str:
    """A tenant-less helper: create (or reuse) tenant 'acme' and an endpoint on *path*."""
    sessions = stack.hookline.sessions
    if not stack.sql("SELECT id FROM tenants WHERE name = 'acme'"):
        admin.create_tenant(sessions, "acme")
    created = admin.add_endpoint(sessions, stack.hookline.catalogue, tenant="acme",
                                 url=receiver.url(path), events=list(events),
                                 policy=stack.hookline.egress_policy, **options)  # type: ignore[arg-type]
    secret = created.secret
    chosen = route or Route()
    chosen.verify = lambda headers, body: crewpass_signature_ok(secret, headers, body)
    receiver.route(path, chosen)
    return created.endpoint.id


def delivery_rows(stack: Stack, endpoint_id: str) -> list[tuple[str, int, str | None]]:
    return [tuple(r) for r in stack.sql(
        "SELECT state, attempt_count, dead_reason FROM deliveries WHERE endpoint_id = :e "
        "ORDER BY created_at", e=endpoint_id)]


def attempt_statuses(stack: Stack, endpoint_id: str) -> list[int | None]:
    return [r[0] for r in stack.sql(
        "SELECT a.status_code FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
        "WHERE d.endpoint_id = :e ORDER BY a.id", e=endpoint_id)]


class TestHappyPath:
    """Published events reach every matching subscriber, signed as CrewPass documents."""

    @pytest.mark.parametrize("broker", BROKERS, indirect=True)
    def test_events_arrive_signed_with_the_crewpass_envelope(self, stack: Stack,
                                                              receiver: Receiver) -> None:
        endpoint = subscribe(stack, receiver, "/all")
        other = subscribe(stack, receiver, "/status-only", events=("crew.status.changed",))
        stack.worker()
        published = [stack.hookline.publish("acme", "crew.document.processed",
                                            {"crew_id": f"crw_{i}", "_internal": None})
                     for i in range(5)]
        wait_until(lambda: len(receiver.accepted("/all")) == 5, what="5 deliveries")

        assert receiver.accepted("/all") == {p.event_id for p in published}
        assert receiver.for_path("/status-only") == []
        for request in receiver.for_path("/all"):
            assert request.verified is True
            envelope = json.loads(request.body)
            assert list(envelope) == ["schema_version", "event_id", "event_type", "occurred_at",
                                      "partner_id", "data"]
            assert envelope["schema_version"] == 1
            assert envelope["event_type"] == "crew.document.processed"
            assert request.headers["X-CrewPass-Event-Id"] == envelope["event_id"]
            assert request.headers["X-CrewPass-Schema-Version"] == "1"
        # the receiver answers before the worker records the outcome: wait for the rows
        wait_until(lambda: delivery_rows(stack, endpoint) == [("succeeded", 1, None)] * 5,
                   what="5 deliveries recorded as succeeded")
        assert attempt_statuses(stack, endpoint) == [200] * 5
        assert delivery_rows(stack, other) == []


class TestRetries:
    """Retryable answers are tried again; the attempt log shows every try."""

    @pytest.mark.parametrize("broker", BROKERS, indirect=True)
    def test_a_503_then_200_is_delivered_on_the_second_attempt(self, stack: Stack,
                                                               receiver: Receiver) -> None:
        endpoint = subscribe(stack, receiver, "/flaky", Route(statuses=[503, 200]))
        stack.worker()
        event = stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: receiver.accepted("/flaky") == {event.event_id}, what="delivery")
        wait_until(lambda: delivery_rows(stack, endpoint) == [("succeeded", 2, None)],
                   what="the row to say succeeded")
        assert attempt_statuses(stack, endpoint) == [503, 200]
        assert [r.status for r in receiver.for_path("/flaky")] == [503, 200]

    def test_a_429_waits_as_long_as_retry_after_says(self, stack: Stack,
                                                     receiver: Receiver) -> None:
        subscribe(stack, receiver, "/busy", Route(statuses=[429, 200], retry_after="2"))
        stack.worker()
        stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: len(receiver.accepted("/busy")) == 1, timeout=30, what="delivery")
        first, second = receiver.for_path("/busy")
        # The schedule alone would wait 0.3 s; Retry-After asked for 2 s.
        assert second.at - first.at >= 1.9

    @pytest.mark.parametrize("broker", BROKERS, indirect=True)
    def test_exhausted_retries_end_as_a_dead_letter(self, stack: Stack,
                                                    receiver: Receiver) -> None:
        endpoint = subscribe(stack, receiver, "/down", Route(statuses=[500]), max_attempts=3)
        stack.worker()
        stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: delivery_rows(stack, endpoint) == [("dead", 3, "exhausted")],
                   timeout=30, what="exhaustion")
        assert attempt_statuses(stack, endpoint) == [500, 500, 500]
        assert len(receiver.for_path("/down")) == 3


class TestPermanentRejections:
    """A 4xx other than 408/429 is final: dead-lettered at once, never retried."""

    def test_a_400_is_dead_lettered_without_a_retry(self, stack: Stack,
                                                    receiver: Receiver) -> None:
        endpoint = subscribe(stack, receiver, "/strict", Route(statuses=[400, 200]))
        stack.worker()
        stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: delivery_rows(stack, endpoint) == [("dead", 1, "permanent_4xx")],
                   what="dead letter")
        stack_sweeps_a_few_times()
        assert len(receiver.for_path("/strict")) == 1

    def test_a_410_dead_letters_and_disables_the_endpoint(self, stack: Stack,
                                                          receiver: Receiver) -> None:
        endpoint = subscribe(stack, receiver, "/gone", Route(statuses=[410]))
        stack.worker()
        stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: delivery_rows(stack, endpoint) == [("dead", 1, "permanent_4xx")],
                   what="dead letter")
        enabled, reason = stack.sql("SELECT enabled, disabled_reason FROM endpoints WHERE id = :e",
                                    e=endpoint)[0]
        assert enabled is False and "410" in reason
        later = stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c2"})
        assert later.delivery_ids == []


def stack_sweeps_a_few_times() -> None:
    """Let the sweeper (every 0.5 s in tests) run several times."""
    time.sleep(2.0)


class TestRequeue:
    """Operators requeue dead letters; requeueing twice delivers once."""

    @pytest.mark.parametrize("broker", BROKERS, indirect=True)
    def test_requeue_delivers_once_even_when_run_twice(
        self, make_stack: Callable[..., Stack], receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        stack = make_stack()
        endpoint = subscribe(stack, receiver, "/picky", Route(statuses=[400, 200]))
        stack.worker()
        event = stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: delivery_rows(stack, endpoint) == [("dead", 1, "permanent_4xx")],
                   what="dead letter")
        for key, value in stack.env.items():
            if key.startswith("HOOKLINE_"):
                monkeypatch.setenv(key, value)
        runner = CliRunner()

        listed = runner.invoke(cli, ["dlq", "list", "--reason", "permanent_4xx"])
        assert listed.exit_code == 0, listed.output
        assert "1 dead letter" in listed.output

        first = runner.invoke(cli, ["dlq", "requeue", "--all", "--endpoint", endpoint])
        assert first.exit_code == 0, first.output
        assert "requeued 1 dead letter" in first.output
        second = runner.invoke(cli, ["dlq", "requeue", "--all", "--endpoint", endpoint])
        assert second.exit_code == 0, second.output
        assert "nothing to do" in second.output

        wait_until(lambda: receiver.accepted("/picky") == {event.event_id}, what="redelivery")
        wait_until(lambda: delivery_rows(stack, endpoint) == [("succeeded", 1, None)],
                   what="the row to say succeeded")
        stack_sweeps_a_few_times()
        assert [r.status for r in receiver.for_path("/picky")] == [400, 200]

    def test_requeue_with_bad_input_exits_non_zero_with_a_message(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        for key, value in stack.env.items():
            if key.startswith("HOOKLINE_"):
                monkeypatch.setenv(key, value)
        runner = CliRunner()
        nothing = runner.invoke(cli, ["dlq", "requeue"])
        assert nothing.exit_code == 2
        assert "name delivery ids, a filter, or --all" in nothing.output
        unknown = runner.invoke(cli, ["dlq", "requeue", "dlv_nope"])
        assert unknown.exit_code == 2
        assert "no such delivery: dlv_nope" in unknown.output
        reason = runner.invoke(cli, ["dlq", "list", "--reason", "bogus"])
        assert reason.exit_code == 2
        assert "unknown reason" in reason.output
