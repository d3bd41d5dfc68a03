"""Operational events through the engine's record and the sweeper, on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app import admin, announce
from app.engine import DeliveryEngine
from app.models import DeadReason, Delivery, DeliveryState, Endpoint, Event
from app.sweeper import Sweeper
from tests.unit.conftest import T0, FixedClock, Harness, ScriptedTransport, http

UNIX_NOW = 1780912800


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(retry_jitter=0, retry_base_seconds=1, circuit_failure_threshold=2,
                        circuit_cooloff_seconds=15, auto_disable_after=60)


def engine(h: Harness, transport: Any, clock: FixedClock | None = None) -> DeliveryEngine:
    return DeliveryEngine(h.settings, h.engine, transport, clock=clock or FixedClock(T0),
                          unix_time=lambda: float(UNIX_NOW), uniform=lambda a, b: a)


def operational_events(h: Harness) -> list[Event]:
    with h.engine.connect() as conn:
        rows = conn.execute(select(Event.id, Event.event_type, Event.payload)
                            .where(Event.event_type.like("hookline.%"))
                            .order_by(Event.created_at, Event.id)).all()
    return [Event(id=r[0], event_type=r[1], payload=r[2]) for r in rows]


def delivered_to(h: Harness, event_id: str) -> list[str]:
    with h.engine.connect() as conn:
        return list(conn.scalars(select(Delivery.endpoint_id).where(Delivery.event_id == event_id)))


def set_endpoint(h: Harness, endpoint_id: str, **values: Any) -> None:
    with h.engine.begin() as conn:
        conn.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(**values))


class TestExhausted:
    """A delivery whose attempts ran out is announced to the subscribers, not to its endpoint."""

    def test_the_last_failed_attempt_announces_the_delivery_with_its_details(self,
                                                                           h: Harness) -> None:
        tenant = h.tenant()
        down = h.endpoint(tenant, url="https://down.example/hooks", max_attempts=1)
        ops = h.endpoint(tenant, url="https://ops.example/hooks", events=("hookline.*",))
        published = h.publish(tenant, "crew.status.changed")

        outcome = engine(h, ScriptedTransport(http(503, body="busy"))).run(published.delivery_ids)

        assert outcome.dead == [(published.delivery_ids[0], DeadReason.EXHAUSTED)]
        [event] = operational_events(h)
        assert event.event_type == "hookline.delivery.exhausted"
        assert event.payload is not None
        assert {k: event.payload[k] for k in ("delivery_id", "endpoint_id", "event_id",
                                              "event_type", "attempts", "last_status_code")} == {
            "delivery_id": published.delivery_ids[0], "endpoint_id": down.id,
            "event_id": published.event_id, "event_type": "crew.status.changed",
            "attempts": 1, "last_status_code": 503}
        assert "503" in event.payload["last_error"]
        assert delivered_to(h, event.id) == [ops.id]
        [(delivery_id, endpoint_id)] = outcome.announced
        assert endpoint_id == ops.id
        assert h.delivery(delivery_id).state == DeliveryState.PENDING

    def test_an_operational_delivery_that_runs_out_is_not_announced(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant, url="https://down.example/hooks", max_attempts=1)
        h.endpoint(tenant, url="https://ops.example/hooks", events=("hookline.*",),
                   max_attempts=1)
        h.endpoint(tenant, url="https://ops2.example/hooks", events=("hookline.*",),
                   max_attempts=1)
        published = h.publish(tenant, "crew.status.changed")
        first = engine(h, ScriptedTransport(http(500))).run(published.delivery_ids)
        assert len(first.announced) == 2

        second = engine(h, ScriptedTransport(http(500), http(500))).run(
            [d for d, _ in first.announced])

        assert len(second.dead) == 2
        assert second.announced == []
        assert len(operational_events(h)) == 1

    def test_with_no_subscriber_nothing_is_written(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant, max_attempts=1)
        published = h.publish(tenant, "crew.status.changed")
        outcome = engine(h, ScriptedTransport(http(500))).run(published.delivery_ids)
        assert outcome.announced == []
        assert operational_events(h) == []


class TestCircuitTransitions:
    """The circuit opening is announced as failing, its closing as recovered: once each."""

    def test_opening_is_failing_and_a_successful_probe_is_recovered(self, h: Harness) -> None:
        clock = FixedClock(T0)
        tenant = h.tenant()
        down = h.endpoint(tenant, url="https://down.example/hooks")
        ops = h.endpoint(tenant, url="https://ops.example/hooks",
                         events=("hookline.endpoint.*",))
        ids = [h.publish(tenant).delivery_ids[0] for _ in range(3)]
        run = engine(h, ScriptedTransport(http(503), http(503), http(200)), clock)

        run.run(ids[:1])
        assert operational_events(h) == []
        assert h.endpoint_row(down.id).failing_since == T0
        opened = run.run(ids[1:2])
        assert h.endpoint_row(down.id).circuit_state == "open"
        [failing] = operational_events(h)
        assert failing.event_type == "hookline.endpoint.failing"
        assert failing.payload is not None and failing.payload["endpoint_id"] == down.id
        assert [e for _, e in opened.announced] == [ops.id]

        clock.advance(15)
        run.run(ids[2:])

        row = h.endpoint_row(down.id)
        assert (row.circuit_state, row.failing_since) == ("closed", None)
        events = operational_events(h)
        assert [e.event_type for e in events] == ["hookline.endpoint.failing",
                                                  "hookline.endpoint.recovered"]
        assert delivered_to(h, events[1].id) == [ops.id]

    def test_a_410_is_announced_as_disabled_because_gone(self, h: Harness) -> None:
        tenant = h.tenant()
        gone = h.endpoint(tenant, url="https://gone.example/hooks")
        h.endpoint(tenant, url="https://ops.example/hooks", events=("hookline.endpoint.disabled",))
        published = h.publish(tenant)
        engine(h, ScriptedTransport(http(410))).run(published.delivery_ids)
        [event] = operational_events(h)
        assert event.event_type == "hookline.endpoint.disabled"
        assert event.payload is not None
        assert (event.payload["endpoint_id"], event.payload["trigger"]) == (gone.id, "gone")
        assert "410" in event.payload["reason"]


class TestAnnouncingNeverFailsTheRecord:
    def test_an_error_while_announcing_is_logged_and_the_outcome_is_recorded(
            self, h: Harness, monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture) -> None:
        tenant = h.tenant()
        h.endpoint(tenant, max_attempts=1)
        h.endpoint(tenant, url="https://ops.example/hooks", events=("hookline.*",))
        published = h.publish(tenant)

        def broken(*_args: Any, **_kwargs: Any) -> list[tuple[str, str]]:
            raise RuntimeError("no room for notices")

        monkeypatch.setattr(announce, "write", broken)
        outcome = engine(h, ScriptedTransport(http(500))).run(published.delivery_ids)

        assert outcome.announced == []
        assert h.delivery(published.delivery_ids[0]).state == DeliveryState.DEAD
        assert operational_events(h) == []
        assert "operational events could not be written" in caplog.text


class TestAutoDisable:
    """The sweeper disables an endpoint failing for HOOKLINE_AUTO_DISABLE_AFTER (60 s here)."""

    def sweep(self, h: Harness, at: Any) -> Any:
        return Sweeper(h.settings, h.sessions, h.dispatcher, None, clock=FixedClock(at)).run()

    def test_a_streak_as_long_as_the_limit_disables_and_announces(self, h: Harness) -> None:
        tenant = h.tenant()
        down = h.endpoint(tenant, url="https://down.example/hooks")
        ops = h.endpoint(tenant, url="https://ops.example/hooks", events=("hookline.*",))
        set_endpoint(h, down.id, failing_since=T0)

        assert self.sweep(h, T0 + timedelta(seconds=59)).disabled == 0
        report = self.sweep(h, T0 + timedelta(seconds=60))

        assert report.disabled == 1
        row = h.endpoint_row(down.id)
        assert not row.enabled
        assert row.disabled_reason == ("auto-disabled: no successful delivery for 1 min "
                                       "(failing since 2030-01-01T12:00:00.000Z)")
        [event] = operational_events(h)
        assert event.event_type == "hookline.endpoint.disabled"
        assert event.payload is not None
        assert (event.payload["trigger"], event.payload["failing_since"]) == (
            "failing", "2030-01-01T12:00:00.000Z")
        [delivery_id] = h.sender.delivery_ids_sent()
        assert h.delivery(delivery_id).endpoint_id == ops.id
        assert self.sweep(h, T0 + timedelta(seconds=120)).disabled == 0
        assert len(operational_events(h)) == 1

    def test_re_enabling_clears_the_streak(self, h: Harness) -> None:
        tenant = h.tenant()
        down = h.endpoint(tenant)
        set_endpoint(h, down.id, failing_since=T0, enabled=False)
        admin.set_endpoint_enabled(h.sessions, down.id, True)
        assert h.endpoint_row(down.id).failing_since is None
        assert self.sweep(h, T0 + timedelta(days=1)).disabled == 0

    def test_a_success_ends_the_streak(self, h: Harness) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant)
        ids = [h.publish(tenant).delivery_ids[0] for _ in range(2)]
        run = engine(h, ScriptedTransport(http(503), http(200)))
        run.run(ids[:1])
        assert h.endpoint_row(endpoint.id).failing_since == T0
        run.run(ids[1:])
        assert h.endpoint_row(endpoint.id).failing_since is None
