"""Operational events end to end: a real worker, PostgreSQL, Redis and a loopback receiver.

One endpoint keeps failing; a second endpoint of the same tenant subscribed to
``hookline.*`` hears about it, signed like any delivery.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import admin
from app.receiver import Receiver, Route
from tests.integration.conftest import Stack
from tests.support import crewpass_signature_ok, wait_until

pytestmark = pytest.mark.integration


def endpoint(stack: Stack, receiver: Receiver, path: str, route: Route,
             events: tuple[str, ...], **options: Any) -> str:
    if not stack.sql("SELECT id FROM tenants WHERE name = 'acme'"):
        admin.create_tenant(stack.hookline.sessions, "acme")
    created = admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue,
                                 tenant="acme", url=receiver.url(path), events=list(events),
                                 policy=stack.hookline.egress_policy, **options)
    secret = created.secret
    route.verify = lambda headers, body: crewpass_signature_ok(secret, headers, body)
    receiver.route(path, route)
    return created.endpoint.id


def envelopes(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """Each accepted request's body, once per event."""
    seen: dict[str, dict[str, Any]] = {}
    for request in receiver.for_path(path):
        if request.status == 200:
            assert request.verified is True
            seen.setdefault(request.event_id, json.loads(request.body))
    return list(seen.values())


def of_type(receiver: Receiver, path: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in envelopes(receiver, path) if e["event_type"] == event_type]


def test_a_failing_endpoint_is_auto_disabled_and_a_subscriber_hears_why(
        make_stack: Any, receiver: Receiver) -> None:
    stack = make_stack(auto_disable_after=3.0)
    down = endpoint(stack, receiver, "/down", Route(statuses=[503]), ("*",), max_attempts=2)
    ops = endpoint(stack, receiver, "/ops", Route(), ("hookline.*",))
    stack.worker()
    published = stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})

    wait_until(lambda: of_type(receiver, "/ops", "hookline.delivery.exhausted"),
               timeout=30, what="hookline.delivery.exhausted at /ops")
    wait_until(lambda: of_type(receiver, "/ops", "hookline.endpoint.disabled"),
               timeout=30, what="hookline.endpoint.disabled at /ops")

    [exhausted] = of_type(receiver, "/ops", "hookline.delivery.exhausted")
    [delivery_id] = published.delivery_ids
    assert {k: exhausted["data"][k] for k in ("delivery_id", "endpoint_id", "event_id",
                                              "event_type", "attempts", "last_status_code")} == {
        "delivery_id": delivery_id, "endpoint_id": down, "event_id": published.event_id,
        "event_type": "crew.status.changed", "attempts": 2, "last_status_code": 503}
    [disabled] = of_type(receiver, "/ops", "hookline.endpoint.disabled")
    assert disabled["data"]["endpoint_id"] == down
    assert disabled["data"]["trigger"] == "failing"
    assert disabled["data"]["reason"].startswith("auto-disabled: no successful delivery for 3 s")
    [(enabled, reason, since)] = stack.sql(
        "SELECT enabled, disabled_reason, failing_since FROM endpoints WHERE id = :e", e=down)
    assert enabled is False and reason == disabled["data"]["reason"] and since is not None
    # The failing endpoint received only its own event, never one about itself.
    assert {r.event_id for r in receiver.for_path("/down")} == {published.event_id}
    assert receiver.bad_signatures == 0
    # Both operational events are ordinary rows of the tenant's log, delivered to /ops only.
    rows = stack.sql("SELECT e.event_type, d.endpoint_id, d.state FROM events e "
                     "JOIN deliveries d ON d.event_id = e.id "
                     "WHERE e.event_type LIKE 'hookline.%' ORDER BY e.event_type")
    assert [tuple(r) for r in rows] == [("hookline.delivery.exhausted", ops, "succeeded"),
                                        ("hookline.endpoint.disabled", ops, "succeeded")]

    # Re-enabling clears the streak: the endpoint starts afresh.
    admin.set_endpoint_enabled(stack.hookline.sessions, down, True)
    assert stack.sql("SELECT failing_since FROM endpoints WHERE id = :e", e=down) == [(None,)]


def test_a_circuit_that_opens_is_failing_and_when_it_closes_recovered(
        make_stack: Any, receiver: Receiver) -> None:
    stack = make_stack(circuit_failure_threshold=2, circuit_cooloff_seconds=1.0,
                       circuit_max_cooloff_seconds=2.0, auto_disable_after=0)
    flaky = Route(statuses=[503])
    down = endpoint(stack, receiver, "/flaky", flaky, ("*",))
    ops = endpoint(stack, receiver, "/ops", Route(), ("hookline.endpoint.*",))
    stack.worker()
    events = [stack.hookline.publish("acme", "crew.status.changed", {"crew_id": f"c{i}"})
              for i in range(2)]

    wait_until(lambda: of_type(receiver, "/ops", "hookline.endpoint.failing"),
               timeout=30, what="hookline.endpoint.failing at /ops")
    flaky.statuses = [200]
    wait_until(lambda: of_type(receiver, "/ops", "hookline.endpoint.recovered"),
               timeout=30, what="hookline.endpoint.recovered at /ops")
    wait_until(lambda: receiver.accepted("/flaky") == {e.event_id for e in events},
               timeout=30, what="the held deliveries to arrive after recovery")

    [failing] = of_type(receiver, "/ops", "hookline.endpoint.failing")
    [recovered] = of_type(receiver, "/ops", "hookline.endpoint.recovered")
    assert failing["data"]["endpoint_id"] == recovered["data"]["endpoint_id"] == down
    assert failing["data"]["failures"] >= 2
    assert recovered["data"]["failing_since"] is not None
    assert [r.event_id for r in receiver.for_path("/flaky")
            if json.loads(r.body)["event_type"].startswith("hookline.")] == []
    assert stack.sql("SELECT circuit_state, failing_since FROM endpoints WHERE id = :e",
                     e=down) == [("closed", None)]
    assert ops != down
