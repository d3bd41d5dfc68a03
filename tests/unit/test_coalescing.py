"""Enqueue coalescing: single publishes' messages are sent from one thread, together
when they gather, and whatever the broker refuses is parked."""

from __future__ import annotations

import threading
from typing import Any

from app.coalescing import EnqueueCoalescer
from app.dispatch import Dispatcher
from tests.unit.conftest import RecordingSender


class GatedSender(RecordingSender):
    """A broker whose first send waits for a gate, so later submissions pile up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.first_send_started = threading.Event()

    def send_task(self, name: str, args: Any = None, **options: Any) -> Any:
        if not self.first_send_started.is_set():
            self.first_send_started.set()
            assert self.gate.wait(5)
        return super().send_task(name, args, **options)


def coalescer(sender: RecordingSender, parked: list[str]) -> EnqueueCoalescer:
    return EnqueueCoalescer(Dispatcher(sender, partitions=1, task_batch=100), parked.extend)


class TestCoalescing:
    """Messages leave from the coalescer's thread, several ids to a message under load."""

    def test_an_idle_publishers_delivery_is_sent_at_once(self) -> None:
        sender, parked = RecordingSender(), []
        c = coalescer(sender, parked)
        c.submit([("dlv_1", "ep_1")])
        c.close()
        assert sender.delivery_ids_sent() == ["dlv_1"]
        assert parked == []

    def test_submissions_during_a_send_go_out_together_in_one_message(self) -> None:
        sender, parked = GatedSender(), []
        c = coalescer(sender, parked)
        c.submit([("dlv_0", "ep_1")])
        assert sender.first_send_started.wait(5)
        for n in range(1, 6):
            c.submit([(f"dlv_{n}", "ep_1")])
        sender.gate.set()
        c.close()
        messages = [task.args[0] for task in sender.sent]
        assert messages == [["dlv_0"], [f"dlv_{n}" for n in range(1, 6)]]

    def test_what_the_broker_refuses_is_parked(self) -> None:
        sender, parked = RecordingSender(), []
        sender.down = True
        c = coalescer(sender, parked)
        c.submit([("dlv_1", "ep_1"), ("dlv_2", "ep_1")])
        c.close()
        assert sorted(parked) == ["dlv_1", "dlv_2"]

    def test_after_close_a_submission_is_sent_directly(self) -> None:
        sender, parked = RecordingSender(), []
        c = coalescer(sender, parked)
        c.close()
        c.submit([("dlv_9", "ep_1")])
        assert sender.delivery_ids_sent() == ["dlv_9"]
