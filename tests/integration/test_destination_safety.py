"""End to end: a delivery to a blocked destination is dead-lettered at once and never sent.

The deployment here allows plain http but has an empty allow-list, and the endpoint
names ``localhost``: registration accepts the hostname (names are judged when they
are resolved), and the worker refuses it when it resolves to 127.0.0.1. The receiver
listening there must see nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app import admin
from app.receiver import Receiver
from tests.integration.conftest import Stack
from tests.integration.test_delivery_flow import delivery_rows, stack_sweeps_a_few_times
from tests.support import wait_until

pytestmark = pytest.mark.integration


class TestBlockedDestination:
    """A name resolving to loopback, without an allow-list, ends dead after one unsent attempt."""

    def test_a_blocked_destination_is_dead_lettered_without_a_retry(
        self, make_stack: Callable[..., Stack], receiver: Receiver
    ) -> None:
        stack = make_stack(egress_allow=[])
        admin.create_tenant(stack.hookline.sessions, "acme")
        endpoint = admin.add_endpoint(
            stack.hookline.sessions, stack.hookline.catalogue, tenant="acme",
            url=f"http://localhost:{receiver.port}/blocked", events=["*"],
            policy=stack.hookline.egress_policy,
        ).endpoint.id
        receiver.route("/blocked")
        stack.worker()

        stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})

        wait_until(lambda: delivery_rows(stack, endpoint) == [("dead", 1, "blocked_destination")],
                   what="a blocked_destination dead letter")
        stack_sweeps_a_few_times()
        assert delivery_rows(stack, endpoint) == [("dead", 1, "blocked_destination")]
        [(status, error_class, message)] = stack.sql(
            "SELECT a.status_code, a.error_class, a.error_message FROM attempts a "
            "JOIN deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = :e", e=endpoint)
        assert (status, error_class) == (None, "BlockedDestination")
        assert "localhost resolves to" in message and "loopback address" in message
        assert receiver.arrived == {} and receiver.received == []
