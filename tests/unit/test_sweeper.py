"""The sweeper: lost attempts, broker resets, parked and stale deliveries go back on the broker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.dispatch import Dispatcher
from app.models import Attempt, DeadReason, DeliveryState
from app.names import BROKER_EPOCH_KEY
from app.partitioning import queue_for
from app.sweeper import Sweeper
from tests.unit.conftest import T0, DictEpochStore, FixedClock, Harness

EPOCH_KEY = BROKER_EPOCH_KEY


def sweeper(h: Harness, epoch: DictEpochStore | None = None) -> Sweeper:
    """A sweeper at T0 whose broker epoch is present (no reset) unless told otherwise."""
    store = epoch if epoch is not None else DictEpochStore({EPOCH_KEY: "epoch_before"})
    return Sweeper(h.settings, h.sessions, h.dispatcher, store, clock=FixedClock(T0))


def delivery(h: Harness, **values: Any) -> tuple[str, str]:
    """One published delivery, its row then set to *values*; the sender's log is cleared."""
    tenant = h.tenant()
    endpoint = h.endpoint(tenant)
    [delivery_id] = h.publish(tenant).delivery_ids
    if values:
        h.set_delivery(delivery_id, **values)
    h.sender.sent.clear()
    return delivery_id, endpoint.id


def ago(seconds: float) -> Any:
    return T0 - timedelta(seconds=seconds)


class TestParkedAndStale:
    """Due deliveries without a message, or whose message never ran, are sent again."""

    def test_a_parked_due_delivery_is_enqueued_and_marked_queued(self, harness: Harness) -> None:
        delivery_id, endpoint_id = delivery(harness, state=DeliveryState.RETRY_SCHEDULED,
                                            queued_at=None, next_attempt_at=ago(5))

        report = sweeper(harness).run()

        assert report.dispatched == 1 and report.failed == []
        [task] = harness.sender.sent
        assert (task.name, task.args) == ("hookline.deliver", [[delivery_id]])
        assert task.options == {"queue": queue_for(endpoint_id, 8)}
        row = harness.delivery(delivery_id)
        assert row.queued_at == T0
        assert row.next_attempt_at == ago(5)

    def test_a_parked_delivery_not_yet_due_is_left_alone(self, harness: Harness) -> None:
        delivery_id, _ = delivery(harness, state=DeliveryState.RETRY_SCHEDULED, queued_at=None,
                                  next_attempt_at=T0 + timedelta(minutes=10))
        assert sweeper(harness).run().dispatched == 0
        assert harness.sender.sent == []
        assert harness.delivery(delivery_id).queued_at is None

    def test_a_queued_delivery_due_recently_is_left_to_its_message(self,
                                                                   harness: Harness) -> None:
        delivery_id, _ = delivery(harness, queued_at=ago(10), next_attempt_at=ago(10))
        report = sweeper(harness).run()
        assert report.dispatched == 0
        assert harness.sender.sent == []
        assert harness.delivery(delivery_id).queued_at == ago(10)

    def test_a_queued_delivery_overdue_beyond_redispatch_after_is_sent_again(
        self, harness: Harness
    ) -> None:
        overdue = harness.settings.redispatch_after + 60
        delivery_id, _ = delivery(harness, queued_at=ago(overdue), next_attempt_at=ago(overdue))

        report = sweeper(harness).run()

        assert report.dispatched == 1
        assert harness.sender.delivery_ids_sent() == [delivery_id]
        row = harness.delivery(delivery_id)
        assert row.queued_at == T0
        assert row.next_attempt_at == ago(overdue)

    @pytest.mark.parametrize("state", [DeliveryState.SUCCEEDED, DeliveryState.DEAD])
    def test_finished_deliveries_are_never_sent(self, harness: Harness,
                                                state: DeliveryState) -> None:
        delivery(harness, state=state, queued_at=None, next_attempt_at=ago(5000))
        assert sweeper(harness).run().dispatched == 0
        assert harness.sender.sent == []

    def test_more_due_deliveries_than_a_batch_are_all_sent_in_one_run(
        self, make_harness: Callable[..., Harness]
    ) -> None:
        h = make_harness(sweep_batch=2)
        ids = [delivery(h, queued_at=None, next_attempt_at=ago(5))[0] for _ in range(5)]
        report = sweeper(h).run()
        assert report.dispatched == 5
        assert sorted(h.sender.delivery_ids_sent()) == sorted(ids)

    def test_a_broker_outage_leaves_the_deliveries_parked(self, harness: Harness) -> None:
        delivery_id, _ = delivery(harness, queued_at=None, next_attempt_at=ago(5))
        harness.sender.down = True

        report = sweeper(harness).run()

        assert harness.sender.refused
        assert report.failed == [delivery_id]
        assert report.dispatched == 0
        assert harness.delivery(delivery_id).queued_at is None

    def test_a_broker_outage_with_a_full_batch_ends_the_run(
        self, make_harness: Callable[..., Harness]
    ) -> None:
        h = make_harness(sweep_batch=1)
        delivery_id, _ = delivery(h, queued_at=None, next_attempt_at=ago(5))

        class RunawaySweep(BaseException):
            """Raised past the dispatcher's ``except Exception`` to stop an endless loop."""

        class OutageSender:
            calls = 0

            def send_task(self, name: str, args: Any = None, **options: Any) -> None:
                self.calls += 1
                if self.calls > 10:
                    raise RunawaySweep("the sweeper kept re-sending the same parked delivery")
                raise ConnectionError("broker unavailable")

        dispatcher = Dispatcher(OutageSender(), partitions=8, task_batch=20)
        sweep = Sweeper(h.settings, h.sessions, dispatcher, DictEpochStore({EPOCH_KEY: "e"}),
                        clock=FixedClock(T0))

        report = sweep.run()

        assert report.failed == [delivery_id]
        assert h.delivery(delivery_id).queued_at is None


class TestLostAttempts:
    """An in-flight delivery whose lease expired lost its worker: it is recorded and resent."""

    def test_an_expired_lease_records_a_worker_lost_attempt_and_resends(self,
                                                                        harness: Harness) -> None:
        delivery_id, _ = delivery(harness, state=DeliveryState.IN_FLIGHT, attempt_count=1,
                                  lease_expires_at=ago(1), queued_at=ago(120),
                                  next_attempt_at=ago(120))

        report = sweeper(harness).run()

        assert (report.lost, report.exhausted, report.dead) == (1, 0, [])
        [attempt] = harness.attempts(delivery_id)
        assert attempt.error_class == "WorkerLost"
        assert attempt.attempt_number == 1
        assert attempt.started_at == T0
        row = harness.delivery(delivery_id)
        assert row.state == DeliveryState.RETRY_SCHEDULED
        assert row.lease_expires_at is None
        assert row.last_error == "worker lost mid-attempt"
        assert row.next_attempt_at == T0
        assert row.queued_at == T0
        assert harness.sender.delivery_ids_sent() == [delivery_id]
        assert report.dispatched == 1

    def test_a_lost_last_attempt_is_dead_exhausted_and_not_resent(self,
                                                                  harness: Harness) -> None:
        delivery_id, _ = delivery(harness, state=DeliveryState.IN_FLIGHT,
                                  attempt_count=harness.settings.max_attempts,
                                  lease_expires_at=ago(1))

        report = sweeper(harness).run()

        assert (report.lost, report.exhausted) == (1, 1)
        assert report.dead == [(delivery_id, DeadReason.EXHAUSTED)]
        row = harness.delivery(delivery_id)
        assert (row.state, row.dead_reason, row.dead_at) == (DeliveryState.DEAD, "exhausted", T0)
        assert [a.error_class for a in harness.attempts(delivery_id)] == ["WorkerLost"]
        assert harness.sender.sent == []

    def test_the_endpoint_attempt_budget_decides_exhaustion(self, harness: Harness) -> None:
        tenant = harness.tenant()
        harness.endpoint(tenant, max_attempts=2)
        [delivery_id] = harness.publish(tenant).delivery_ids
        harness.set_delivery(delivery_id, state=DeliveryState.IN_FLIGHT, attempt_count=2,
                             lease_expires_at=ago(1))
        report = sweeper(harness).run()
        assert report.dead == [(delivery_id, DeadReason.EXHAUSTED)]

    def test_a_live_lease_is_left_alone(self, harness: Harness) -> None:
        delivery_id, _ = delivery(harness, state=DeliveryState.IN_FLIGHT, attempt_count=1,
                                  lease_expires_at=T0 + timedelta(seconds=30))
        report = sweeper(harness).run()
        assert report.lost == 0
        assert harness.count(Attempt) == 0
        assert harness.delivery(delivery_id).state == DeliveryState.IN_FLIGHT
        assert harness.sender.sent == []


class TestBrokerReset:
    """A missing epoch key means the broker lost its messages: waiting deliveries are resent once."""

    def test_a_missing_epoch_resends_waiting_deliveries_once(self, harness: Harness) -> None:
        h = harness
        due, _ = delivery(h, queued_at=ago(10), next_attempt_at=ago(10))
        waiting, waiting_endpoint = delivery(h, state=DeliveryState.RETRY_SCHEDULED,
                                             queued_at=ago(5), next_attempt_at=T0 +
                                             timedelta(seconds=30))
        delivery(h, state=DeliveryState.SUCCEEDED, queued_at=ago(10), next_attempt_at=ago(10))
        epoch = DictEpochStore()
        sweep = sweeper(h, epoch)

        report = sweep.run()

        assert report.broker_reset
        assert EPOCH_KEY in epoch.data
        assert report.dispatched == 2
        by_id = {t.args[0][0]: t for t in h.sender.sent}
        assert set(by_id) == {due, waiting}
        assert "countdown" not in by_id[due].options
        assert by_id[waiting].options == {"queue": queue_for(waiting_endpoint, 8),
                                          "countdown": 30.0}
        assert h.delivery(waiting).next_attempt_at == T0 + timedelta(seconds=30)
        assert h.delivery(due).queued_at == T0

        h.sender.sent.clear()
        assert sweep.run().broker_reset is False
        assert h.sender.sent == []

    def test_the_epoch_key_carries_the_broker_key_prefix(
        self, make_harness: Callable[..., Harness]
    ) -> None:
        h = make_harness(broker_key_prefix="tenant-a:")
        epoch = DictEpochStore({EPOCH_KEY: "unprefixed"})
        assert sweeper(h, epoch).run().broker_reset
        assert "tenant-a:" + EPOCH_KEY in epoch.data

    def test_without_an_epoch_store_there_is_never_a_reset(self, harness: Harness) -> None:
        delivery(harness, queued_at=ago(10), next_attempt_at=ago(10))
        sweep = Sweeper(harness.settings, harness.sessions, harness.dispatcher, None,
                        clock=FixedClock(T0))
        assert sweep.run().broker_reset is False
        assert harness.sender.sent == []

    def test_an_unreadable_epoch_store_is_not_a_reset(self, harness: Harness) -> None:
        class Unreachable:
            def get(self, name: str) -> Any:
                raise ConnectionError("redis down")

            def set(self, name: str, value: str, nx: bool = False) -> Any:
                raise ConnectionError("redis down")

        delivery(harness, queued_at=ago(10), next_attempt_at=ago(10))
        sweep = Sweeper(harness.settings, harness.sessions, harness.dispatcher, Unreachable(),
                        clock=FixedClock(T0))
        assert sweep.run().broker_reset is False
        assert harness.sender.sent == []

    def test_a_reset_noticed_while_the_database_is_away_is_noticed_again(
        self, harness: Harness
    ) -> None:
        h = harness
        due, _ = delivery(h, queued_at=ago(10), next_attempt_at=ago(10))
        epoch = DictEpochStore()
        sweep = sweeper(h, epoch)
        real = sweep.sessions
        sweep.sessions = Unopenable()  # type: ignore[assignment]

        with pytest.raises(ConnectionError):
            sweep.broker_was_reset()  # the key was missing; the database could not be told

        assert EPOCH_KEY not in epoch.data
        sweep.sessions = real
        report = sweep.run()
        assert report.broker_reset
        assert h.sender.delivery_ids_sent() == [due]
        assert EPOCH_KEY in epoch.data

    def test_a_reset_parks_every_waiting_delivery_before_it_sets_the_epoch(
        self, harness: Harness
    ) -> None:
        h = harness
        later, _ = delivery(h, state=DeliveryState.RETRY_SCHEDULED, queued_at=ago(5),
                            next_attempt_at=T0 + timedelta(hours=2))
        epoch = DictEpochStore()

        report = sweeper(h, epoch).run()

        assert report.broker_reset and EPOCH_KEY in epoch.data
        # Parked in SQL, no two-hour countdown held by the broker: sent when it is due.
        assert h.delivery(later).queued_at is None
        assert h.sender.sent == []


class Unopenable:
    """A session factory whose database cannot be reached."""

    def __call__(self) -> Any:
        raise ConnectionError("database unreachable")

    def begin(self) -> Any:
        raise ConnectionError("database unreachable")


class StaticHorizons:
    """Queue horizons as the broker would report them (unix seconds, or None)."""

    def __init__(self, default: float | None, **per_queue: float | None) -> None:
        self.default = default
        self.per_queue = per_queue
        self.asked = 0

    def horizons(self, queues: Any) -> dict[str, float | None]:
        self.asked += 1
        return {q: self.per_queue.get(q.replace(".", "_"), self.default) for q in queues}


def with_horizons(h: Harness, horizons: Any) -> Sweeper:
    return Sweeper(h.settings, h.sessions, h.dispatcher,
                   DictEpochStore({EPOCH_KEY: "epoch_before"}), horizons, clock=FixedClock(T0))


class TestLostMessages:
    """A due delivery whose message left its queue and was never claimed is sent again."""

    def test_a_delivery_due_past_lost_after_whose_queue_is_empty_is_resent(
        self, harness: Harness
    ) -> None:
        h = harness
        overdue = h.settings.lost_after + 1
        lost, _ = delivery(h, queued_at=ago(overdue + 5), next_attempt_at=ago(overdue))

        report = with_horizons(h, StaticHorizons(T0.timestamp())).run()

        assert (report.resent, report.dispatched) == (1, 1)
        assert h.sender.delivery_ids_sent() == [lost]
        assert h.delivery(lost).queued_at == T0

    def test_a_delivery_due_only_recently_is_left_to_its_message(self, harness: Harness) -> None:
        h = harness
        recent = h.settings.lost_after - 1
        delivery(h, queued_at=ago(60), next_attempt_at=ago(recent))
        report = with_horizons(h, StaticHorizons(T0.timestamp())).run()
        assert report.resent == 0 and h.sender.sent == []

    def test_a_delivery_sent_after_the_oldest_waiting_message_is_still_queued(
        self, harness: Harness
    ) -> None:
        h = harness
        delivery(h, queued_at=ago(30), next_attempt_at=ago(30))
        oldest_waiting = (T0 - timedelta(seconds=60)).timestamp()  # a backlog: 60 s deep
        report = with_horizons(h, StaticHorizons(oldest_waiting)).run()
        assert report.resent == 0 and h.sender.sent == []

    def test_a_queue_without_a_horizon_waits_for_redispatch_after(self, harness: Harness) -> None:
        h = harness
        delivery(h, queued_at=ago(60), next_attempt_at=ago(60))
        report = with_horizons(h, StaticHorizons(None)).run()
        assert report.resent == 0 and h.sender.sent == []

    def test_an_unreadable_broker_resends_nothing_early(self, harness: Harness) -> None:
        class Broken:
            def horizons(self, queues: Any) -> dict[str, float | None]:
                raise ConnectionError("redis down")

        h = harness
        delivery(h, queued_at=ago(60), next_attempt_at=ago(60))
        report = with_horizons(h, Broken()).run()
        assert report.resent == 0 and h.sender.sent == []

    def test_a_lost_countdown_retry_keeps_its_attempt_count(self, harness: Harness) -> None:
        h = harness
        lost, _ = delivery(h, state=DeliveryState.RETRY_SCHEDULED, attempt_count=3,
                           queued_at=ago(40), next_attempt_at=ago(20))
        with_horizons(h, StaticHorizons(T0.timestamp())).run()
        row = h.delivery(lost)
        assert (row.state, row.attempt_count) == (DeliveryState.RETRY_SCHEDULED, 3)
        assert h.sender.delivery_ids_sent() == [lost]


class TestPoisonIsolation:
    """Deliveries of a worker that died go back one per message."""

    def test_each_recovered_delivery_gets_its_own_message(self, harness: Harness) -> None:
        h = harness
        tenant = h.tenant()
        h.endpoint(tenant)
        ids = [h.publish(tenant).delivery_ids[0] for _ in range(3)]
        for delivery_id in ids:
            h.set_delivery(delivery_id, state=DeliveryState.IN_FLIGHT, attempt_count=1,
                           lease_expires_at=ago(1))
        h.sender.sent.clear()

        report = sweeper(h).run()

        assert report.lost == 3
        assert sorted(len(t.args[0]) for t in h.sender.sent) == [1, 1, 1]
        assert sorted(h.sender.delivery_ids_sent()) == sorted(ids)


class TestLostMessagesSentRecently:
    def test_a_long_due_delivery_whose_message_was_sent_just_now_is_left_to_it(
        self, harness: Harness
    ) -> None:
        h = harness
        # Due since publishing, but its message went out a second ago (a key's next
        # delivery, released when the one before it finished).
        delivery(h, queued_at=ago(1), next_attempt_at=ago(300))
        report = with_horizons(h, StaticHorizons(T0.timestamp())).run()
        assert report.resent == 0 and h.sender.sent == []

    def test_a_long_due_delivery_sent_just_now_waits_for_redispatch_after_again(
        self, harness: Harness
    ) -> None:
        h = harness
        overdue = h.settings.redispatch_after + 60
        delivery(h, queued_at=ago(1), next_attempt_at=ago(overdue))
        report = sweeper(h).run()
        assert report.dispatched == 0 and h.sender.sent == []
