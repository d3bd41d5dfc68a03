"""A worker process works on at most its limit of deliveries at once."""

from __future__ import annotations

import threading
import time

from app.engine.capacity import Capacity, Permits


class TestCapacity:
    """Batches take a permit per delivery and wait while the process is full."""

    def test_a_batch_waits_until_earlier_deliveries_are_done(self) -> None:
        capacity = Capacity(10)
        first = Permits(capacity, 8)
        took = threading.Event()

        def second_batch() -> None:
            Permits(capacity, 5)
            took.set()

        thread = threading.Thread(target=second_batch, daemon=True)
        thread.start()
        time.sleep(0.1)
        assert not took.is_set()
        first.give(3)  # three of the first batch's deliveries were answered
        assert took.wait(2)
        assert capacity.used == 10
        thread.join(2)

    def test_a_batch_larger_than_the_limit_takes_all_of_it_and_runs(self) -> None:
        capacity = Capacity(4)
        permits = Permits(capacity, 100)
        assert capacity.used == 4
        permits.give_all()
        assert capacity.used == 0

    def test_permits_are_given_back_once_whatever_the_order(self) -> None:
        capacity = Capacity(10)
        permits = Permits(capacity, 6)
        permits.give(2)
        permits.give_all()
        permits.give(5)
        assert capacity.used == 0
