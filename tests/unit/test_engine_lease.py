"""A worker renews the leases of the deliveries it holds, and only those."""

from __future__ import annotations

from datetime import timedelta

from app.engine.lease import Leases
from app.models import DeliveryState
from tests.support import wait_until
from tests.unit.conftest import T0, FixedClock, Harness


def in_flight(h: Harness, lease_seconds: float = 15) -> str:
    tenant = h.tenant()
    h.endpoint(tenant)
    [delivery_id] = h.publish(tenant).delivery_ids
    h.set_delivery(delivery_id, state=DeliveryState.IN_FLIGHT, attempt_count=1,
                   lease_expires_at=T0 + timedelta(seconds=lease_seconds))
    return delivery_id


class TestRenewal:
    def test_a_held_delivery_gets_a_full_lease_from_now(self, harness: Harness) -> None:
        delivery_id = in_flight(harness)
        clock = FixedClock(T0 + timedelta(seconds=10))
        leases = Leases(harness.engine, 15, clock)
        leases.hold([delivery_id])
        try:
            assert leases.renew() == 1
        finally:
            leases.close()
        assert harness.delivery(delivery_id).lease_expires_at == T0 + timedelta(seconds=25)

    def test_a_released_delivery_is_no_longer_renewed(self, harness: Harness) -> None:
        delivery_id = in_flight(harness)
        leases = Leases(harness.engine, 15, FixedClock(T0 + timedelta(seconds=10)))
        leases.hold([delivery_id])
        leases.release([delivery_id])
        leases.close()
        assert leases.renew() == 0
        assert harness.delivery(delivery_id).lease_expires_at == T0 + timedelta(seconds=15)

    def test_a_delivery_held_twice_stays_held_until_both_release_it(self,
                                                                    harness: Harness) -> None:
        delivery_id = in_flight(harness)
        leases = Leases(harness.engine, 15, FixedClock(T0))
        leases.hold([delivery_id])
        leases.hold([delivery_id])
        leases.release([delivery_id])
        assert leases.held() == [delivery_id]
        leases.release([delivery_id])
        leases.close()
        assert leases.held() == []

    def test_a_recorded_delivery_is_not_given_a_lease_again(self, harness: Harness) -> None:
        delivery_id = in_flight(harness)
        harness.set_delivery(delivery_id, state=DeliveryState.SUCCEEDED, lease_expires_at=None)
        leases = Leases(harness.engine, 15, FixedClock(T0 + timedelta(seconds=10)))
        leases.hold([delivery_id])
        try:
            assert leases.renew() == 0
        finally:
            leases.close()
        assert harness.delivery(delivery_id).lease_expires_at is None

    def test_the_renewing_thread_extends_leases_while_the_process_lives(
        self, harness: Harness
    ) -> None:
        h = harness
        delivery_id = in_flight(h, lease_seconds=1)
        leases = Leases(h.engine, 0.6, FixedClock(T0 + timedelta(seconds=100)))
        leases.hold([delivery_id])
        try:
            wait_until(lambda: h.delivery(delivery_id).lease_expires_at
                       == T0 + timedelta(seconds=100.6), timeout=5, what="a renewed lease")
        finally:
            leases.close()
