"""The producer loop: watchers when due, relay until drained, stop on request or signal."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Integer, String, column, insert, text

from app.changefeed import ChangeFeed, PollingWatch, Producer, load_watches, serve
from app.changefeed.relay import Relay
from app.changefeed.wakeup import NotifyWaker, TimedWaker
from app.client import Hookline
from app.db import transaction
from app.errors import InvalidWatch
from tests.changefeed_domain import (
    CrewMember,
    PartnerLink,
    create_domain_tables,
    legacy_crew,
    watch_crew_status,
)
from tests.unit.conftest import Harness

#: Loaded by ``load_watches("tests.unit.test_producer:WATCH")``.
WATCH = PollingWatch(name="legacy-crew", query=legacy_crew, key="id", columns=["status"],
                     event_type="crew.status.changed", recipients=["acme"], interval=30)
WATCHES = [WATCH, PollingWatch(name="legacy-crew-2", query=legacy_crew, key="id", columns=["phone"],
                               event_type="crew.profile.updated", recipients=["acme"])]
NOT_A_WATCH = ["legacy-crew"]


def build_watches() -> list[PollingWatch]:
    return [WATCH]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    """A harness, a Hookline on the same database and broker fake, the domain watched."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        create_domain_tables(h.engine)
        h.endpoint(h.tenant("acme"))
        self.hookline = Hookline(h.settings, sender=h.sender)
        self.feed = ChangeFeed(h.catalogue, max_payload_bytes=h.settings.max_payload_bytes)
        watch_crew_status(self.feed)
        self.feed.install(h.sessions)
        self._n = 0

    def changes(self, count: int) -> None:
        for _ in range(count):
            crew_id, self._n = f"c{self._n}", self._n + 1
            with transaction(self.h.sessions) as session:
                session.add(CrewMember(id=crew_id, name=crew_id))
                session.flush()
                session.add(PartnerLink(crew_id=crew_id, partner="acme"))
            with transaction(self.h.sessions) as session:
                crew = session.get(CrewMember, crew_id)
                assert crew is not None
                crew.status = "verified"

    def producer(self, **options: Any) -> Producer:
        options.setdefault("waker", TimedWaker())
        return Producer(self.hookline, **options)

    def close(self) -> None:
        self.hookline.close()


@pytest.fixture
def setup(harness: Harness) -> Any:
    built = Setup(harness)
    yield built
    built.close()


class TestCycle:
    """One cycle polls due watchers, then relays batch after batch until one comes back short."""

    def test_a_cycle_relays_and_enqueues(self, setup: Setup) -> None:
        setup.changes(3)
        report = setup.producer().cycle()
        assert (report.relayed, report.deliveries, report.failed, report.more) == (3, 3, 0, False)
        assert len(setup.h.sender.delivery_ids_sent()) == 3

    def test_run_once_drains_more_than_one_cycle_holds(self, setup: Setup) -> None:
        setup.changes(25)
        producer = setup.producer(batch=1)  # 20 batches per cycle at most
        first = producer.cycle()
        assert (first.relayed, first.more) == (20, True)
        assert producer.run_once().relayed == 5

    def test_watchers_run_when_due(self, setup: Setup) -> None:
        clock = FakeClock()
        producer = setup.producer(watches=[WATCH], monotonic=clock)
        assert "legacy-crew" in producer.cycle().watchers
        with setup.h.engine.begin() as connection:
            connection.execute(insert(legacy_crew), [{"id": 1, "partner": "acme", "status": "new"}])
        clock.now += 29
        assert producer.cycle().watchers == {}
        assert producer._idle_timeout() == pytest.approx(producer.poll_interval)
        clock.now += 1
        polled = producer.cycle()
        assert polled.watchers["legacy-crew"].emitted == 1 and polled.relayed == 1

    def test_a_failing_watcher_does_not_stall_the_relay(self, setup: Setup) -> None:
        missing = PollingWatch(name="gone", query=text("SELECT id, status FROM no_such_table").columns(
            column("id", Integer), column("status", String)), key="id", columns=["status"],
            event_type="crew.status.changed", recipients=["acme"], interval=30)
        clock = FakeClock()
        producer = setup.producer(watches=[missing, WATCH], monotonic=clock)
        setup.changes(2)
        report = producer.cycle()
        assert report.watcher_failures == ["gone"]
        assert "legacy-crew" in report.watchers and report.relayed == 2
        assert producer.cycle().watcher_failures == []  # not retried before its interval
        clock.now += 30
        assert producer.cycle().watcher_failures == ["gone"]

    def test_two_watches_may_not_share_a_name(self, setup: Setup) -> None:
        with pytest.raises(InvalidWatch, match="legacy-crew"):
            setup.producer(watches=[WATCH, WATCH])


class TestRunning:
    """run() keeps going through errors and returns promptly once stopped."""

    def test_stop_ends_run_within_the_poll_interval(self, setup: Setup) -> None:
        producer = setup.producer(poll_interval=5.0)
        thread = threading.Thread(target=producer.run)
        thread.start()
        setup.changes(2)
        time.sleep(0.2)
        started = time.monotonic()
        producer.stop()
        thread.join(5)
        assert not thread.is_alive() and time.monotonic() - started < 1.0

    def test_a_failing_cycle_is_retried(self, setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
        setup.changes(1)
        producer = setup.producer(poll_interval=0.05)
        real = Relay.relay_batch
        calls: list[int] = []

        def flaky(relay: Relay) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("database restarting")
            return real(relay)

        monkeypatch.setattr(Relay, "relay_batch", flaky)
        thread = threading.Thread(target=producer.run)
        thread.start()
        deadline = time.monotonic() + 5
        while not setup.h.sender.delivery_ids_sent() and time.monotonic() < deadline:
            time.sleep(0.05)
        producer.stop()
        thread.join(5)
        assert len(setup.h.sender.delivery_ids_sent()) == 1 and len(calls) >= 2

    def test_serve_stops_on_sigterm_and_restores_the_handlers(self, setup: Setup) -> None:
        """…and disarms its grace-period deadline, which would otherwise end the process later."""
        setup.changes(1)
        producer = setup.producer(poll_interval=0.05)
        before = signal.getsignal(signal.SIGTERM)
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        started = time.monotonic()
        serve(producer, grace=5)
        assert time.monotonic() - started < 3
        assert signal.getsignal(signal.SIGTERM) is before
        assert len(setup.h.sender.delivery_ids_sent()) == 1
        # The grace-period deadline was cancelled: nothing is left to cut this process short.
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        for pending in timers:
            pending.join(1)
        assert not [t for t in timers if t.is_alive()]


class TestWakers:
    """PostgreSQL producers listen for NOTIFY unless told not to; others poll."""

    def test_the_waker_follows_the_database(self, make_harness: Any) -> None:
        # The harness's recording sender: no broker (embedded or not) is started.
        lite = make_harness()
        sqlite = Hookline(lite.settings, sender=lite.sender)
        assert isinstance(Producer(sqlite).waker, TimedWaker)
        pg = make_harness(database_url="postgresql://h/db")
        postgres = Hookline(pg.settings, sender=pg.sender)
        assert isinstance(Producer(postgres).waker, NotifyWaker)
        assert isinstance(Producer(postgres, listen=False).waker, TimedWaker)
        assert Producer(postgres).waker.conninfo == "postgresql://h/db"  # type: ignore[attr-defined]

    def test_a_timed_waker_returns_at_once_when_stopped(self) -> None:
        waker = TimedWaker()
        waker.stop()
        started = time.monotonic()
        assert waker.wait(10) is False
        assert time.monotonic() - started < 1


class TestLoadWatches:
    """--watchers names module:attribute; a watch, a list of them, or a callable returning either."""

    def test_a_watch_a_list_and_a_callable(self) -> None:
        assert load_watches(["tests.unit.test_producer:WATCH"]) == [WATCH]
        assert load_watches(["tests.unit.test_producer:WATCHES"]) == WATCHES
        assert load_watches(["tests.unit.test_producer:build_watches",
                             "tests.unit.test_producer:WATCH"]) == [WATCH, WATCH]

    @pytest.mark.parametrize(("spec", "message"), [
        ("tests.unit.test_producer", "module.path:attribute"),
        ("tests.unit.nowhere:WATCH", "No module named"),
        ("tests.unit.test_producer:NOPE", "NOPE"),
        ("tests.unit.test_producer:NOT_A_WATCH", "not a PollingWatch"),
        ("tests.unit.test_producer:FakeClock", "not a PollingWatch"),
    ])
    def test_refused(self, spec: str, message: str) -> None:
        with pytest.raises(InvalidWatch, match=message):
            load_watches([spec])
