"""app.api.waiting: per-tenant slots for test sends that wait for their attempt."""

from __future__ import annotations

import pytest

from app.api.waiting import WaitSlots
from app.errors import TooManyWaiting


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestWaitSlots:
    def test_a_tenant_may_hold_up_to_the_limit_and_the_next_is_refused(self) -> None:
        slots = WaitSlots(2, clock=Clock())
        with slots.hold("acme", 10), slots.hold("acme", 10):
            assert slots.waiting("acme") == 2
            with pytest.raises(TooManyWaiting, match="at most 2 waiting"), \
                    slots.hold("acme", 10):
                pass
            assert slots.waiting("acme") == 2

    def test_one_tenants_full_slots_leave_another_tenant_free(self) -> None:
        slots = WaitSlots(1, clock=Clock())
        with slots.hold("acme", 10), slots.hold("globex", 10):
            assert (slots.waiting("acme"), slots.waiting("globex")) == (1, 1)

    def test_a_refusal_says_when_the_soonest_wait_ends_in_whole_seconds(self) -> None:
        clock = Clock()
        slots = WaitSlots(2, clock=clock)
        with slots.hold("acme", 30), slots.hold("acme", 7.5):
            clock.now += 2
            with pytest.raises(TooManyWaiting) as refused, slots.hold("acme", 1):
                pass
        assert refused.value.retry_after == 6

    def test_retry_after_is_at_least_one_second(self) -> None:
        clock = Clock()
        slots = WaitSlots(1, clock=clock)
        with slots.hold("acme", 0.1):
            clock.now += 5
            with pytest.raises(TooManyWaiting) as refused, slots.hold("acme", 1):
                pass
        assert refused.value.retry_after == 1

    def test_a_slot_is_given_back_when_the_wait_ends_even_by_an_error(self) -> None:
        slots = WaitSlots(1, clock=Clock())
        with pytest.raises(RuntimeError), slots.hold("acme", 10):
            raise RuntimeError("the send failed")
        assert slots.waiting("acme") == 0
        with slots.hold("acme", 10):
            assert slots.waiting("acme") == 1
