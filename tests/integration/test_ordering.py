"""Ordered delivery per key and sequence numbers, end to end: real PostgreSQL, Redis,
worker processes and a scripted loopback receiver."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from app import admin
from app.receiver import Received, Receiver, Route
from tests.integration.api_callers import Caller
from tests.integration.conftest import Stack
from tests.support import crewpass_signature_ok, wait_until

pytestmark = pytest.mark.integration


def header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def endpoint(stack: Stack, receiver: Receiver, path: str, route: Route, *,
             ordering: str = "key", max_attempts: int | None = None) -> str:
    sessions = stack.hookline.sessions
    if not stack.sql("SELECT id FROM tenants WHERE name = 'acme'"):
        admin.create_tenant(sessions, "acme")
    created = admin.add_endpoint(sessions, stack.hookline.catalogue, tenant="acme",
                                 url=receiver.url(path), events=["*"], ordering=ordering,
                                 max_attempts=max_attempts, policy=stack.hookline.egress_policy)
    secret = created.secret
    route.verify = lambda headers, body: crewpass_signature_ok(secret, headers, body)
    receiver.route(path, route)
    return created.endpoint.id


def publish_keys(stack: Stack, keys: list[str], per_key: int) -> None:
    """*per_key* events for each key, interleaved, keyed by CrewPass's declared field."""
    items = [{"event_type": "crew.status.changed",
              "data": {"crew_unique_id": key, "n": n}}
             for n in range(per_key) for key in keys]
    for start in range(0, len(items), 1000):
        result = stack.hookline.publish_many("acme", items[start:start + 1000])
        assert result.count("created") == len(items[start:start + 1000])


def by_key(requests: list[Received]) -> dict[str, list[tuple[int, int]]]:
    """Per ordering key, (sequence, status) of every request in arrival order."""
    keys: dict[str, list[tuple[int, int]]] = {}
    for request in sorted(requests, key=lambda r: r.at):
        key = unquote(header(request.headers, "X-Hookline-Ordering-Key") or "")
        sequence = int(header(request.headers, "X-Hookline-Sequence") or 0)
        keys.setdefault(key, []).append((sequence, request.status))
    return keys


def out_of_order(requests: list[tuple[int, int]]) -> list[int]:
    """Sequences sent before every earlier one of their key had been accepted."""
    accepted = 0
    early: list[int] = []
    for sequence, status in requests:
        if sequence > accepted + 1:
            early.append(sequence)
        if 200 <= status < 300 and sequence == accepted + 1:
            accepted = sequence
    return early


class TestOrderedDelivery:
    """An endpoint with ordering 'key' gets each key's events one at a time, in order."""

    def test_twenty_keys_of_fifty_events_with_random_503s_each_arrive_in_order(
            self, stack: Stack, receiver: Receiver) -> None:
        chance = random.Random(20261212)
        failures = {}  # event id → 503s before it is accepted, decided on first sight

        def status_of(event_id: str, attempt: int) -> int:
            if event_id not in failures:
                failures[event_id] = chance.choice([0] * 14 + [1] * 4 + [2] * 2)
            return 503 if attempt < failures[event_id] else 200

        endpoint(stack, receiver, "/ordered", Route(status_of=status_of))
        stack.worker()
        keys = [f"crew-{k:02d}" for k in range(20)]
        publish_keys(stack, keys, 50)
        wait_until(lambda: len(receiver.accepted("/ordered")) == 1000, timeout=240,
                   what="1,000 ordered deliveries")

        arrived = by_key(receiver.for_path("/ordered"))
        assert sorted(arrived) == keys
        assert any(status == 503 for requests in arrived.values() for _, status in requests)
        for key, requests in arrived.items():
            assert out_of_order(requests) == [], key
            accepted = [s for s, status in requests if 200 <= status < 300]
            assert sorted(set(accepted)) == list(range(1, 51)), key
        assert receiver.bad_signatures == 0
        wait_until(lambda: stack.sql(
            "SELECT count(*) FROM deliveries WHERE state = 'succeeded'")[0][0] == 1000,
            what="every delivery recorded")
        assert stack.sql("SELECT count(*) FROM deliveries WHERE blocked")[0][0] == 0

    def test_a_retrying_head_holds_back_only_its_own_key(self, stack: Stack,
                                                         receiver: Receiver) -> None:
        """The bound: the other keys' 50 events all arrive within 10 s, while the slow
        key's head (503 five times: about 9 s of backoff) has not been accepted."""
        slow: set[str] = set()

        def status_of(event_id: str, attempt: int) -> int:
            return 503 if event_id in slow and attempt < 5 else 200

        endpoint(stack, receiver, "/mixed", Route(status_of=status_of))
        stack.worker()
        head = stack.hookline.publish("acme", "crew.status.changed",
                                      {"crew_unique_id": "slow", "n": 0})
        slow.add(head.event_id)
        for n in range(1, 4):
            stack.hookline.publish("acme", "crew.status.changed",
                                   {"crew_unique_id": "slow", "n": n})
        started = time.monotonic()
        publish_keys(stack, [f"fast-{k}" for k in range(10)], 5)
        wait_until(lambda: len(receiver.accepted("/mixed")) >= 50, timeout=10,
                   what="the other keys' 50 events within 10 s")
        elapsed = time.monotonic() - started

        arrived = by_key(receiver.for_path("/mixed"))
        assert [s for s, _ in arrived["slow"]] == [1] * len(arrived["slow"])
        assert head.event_id not in receiver.accepted("/mixed")
        assert elapsed < 10
        wait_until(lambda: len(receiver.accepted("/mixed")) == 54, timeout=30,
                   what="the slow key's events after its head")
        assert out_of_order(by_key(receiver.for_path("/mixed"))["slow"]) == []

    def test_a_dead_lettered_head_releases_its_key_and_says_later_events_went_on(
            self, stack: Stack, receiver: Receiver, client: TestClient, acme: Caller) -> None:
        doomed: set[str] = set()

        def status_of(event_id: str, _attempt: int) -> int:
            return 500 if event_id in doomed else 200

        webhook = endpoint(stack, receiver, "/dead-head", Route(status_of=status_of),
                           max_attempts=2)
        stack.worker()
        first = acme.call("POST", "/events", json={"type": "run.failed", "data": {"run": 1},
                                           "orderingKey": "run/1 ü"})
        assert first.status_code == 202, first.text
        doomed.add(first.json()["id"])
        for n in range(2, 4):
            assert acme.call("POST", "/events", json={"type": "run.failed", "data": {"run": n},
                                              "orderingKey": "run/1 ü"}).status_code == 202
        wait_until(lambda: len(receiver.accepted("/dead-head")) == 2, timeout=30,
                   what="the later events after the dead head")

        letters = acme.call("GET", "/dead-letters", params={"webhookId": webhook}).json()["items"]
        assert [(d["eventId"], d["orderingKey"], d["laterDeliveries"]) for d in letters] == [
            (first.json()["id"], "run/1 ü", 2)]
        arrived = by_key(receiver.for_path("/dead-head"))["run/1 ü"]
        assert arrived == [(1, 500), (1, 500), (2, 200), (3, 200)]
        shown = acme.call("GET", f"/events/{first.json()['id']}").json()
        assert (shown["orderingKey"], shown["sequence"]) == ("run/1 ü", 1)


class TestSequenceNumbers:
    """Every delivery of a keyed event carries its number per tenant and key."""

    def test_an_unordered_endpoint_sees_sequences_and_an_unkeyed_event_has_none(
            self, stack: Stack, receiver: Receiver) -> None:
        endpoint(stack, receiver, "/plain", Route(), ordering="none")
        stack.worker()
        for n in range(3):
            stack.hookline.publish("acme", "run.succeeded", {"n": n}, ordering_key="order-7")
        stack.hookline.publish("acme", "run.succeeded", {"n": 9})
        wait_until(lambda: len(receiver.accepted("/plain")) == 4, what="4 deliveries")

        keyed = sorted(int(header(r.headers, "X-Hookline-Sequence") or 0)
                       for r in receiver.for_path("/plain")
                       if header(r.headers, "X-Hookline-Ordering-Key") == "order-7")
        assert keyed == [1, 2, 3]
        unkeyed = [r for r in receiver.for_path("/plain")
                   if header(r.headers, "X-Hookline-Sequence") is None]
        assert len(unkeyed) == 1
        assert stack.sql("SELECT count(*) FROM deliveries WHERE ordering_key IS NOT NULL"
                         )[0][0] == 0

    def test_concurrent_publishers_of_one_key_get_distinct_numbers_in_commit_order(
            self, stack: Stack) -> None:
        from concurrent.futures import ThreadPoolExecutor

        admin.create_tenant(stack.hookline.sessions, "acme")

        def publish(n: int) -> None:
            stack.hookline.publish("acme", "run.succeeded", {"n": n}, ordering_key="shared")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(publish, range(80)))
        numbers = [row[0] for row in stack.sql(
            "SELECT sequence FROM events WHERE ordering_key = 'shared' ORDER BY sequence")]
        assert numbers == list(range(1, 81))

    @pytest.mark.parametrize("key", ["k" * 201, "nul\u0000inside"])
    def test_a_bad_ordering_key_is_refused_with_422(self, acme: Caller, key: str) -> None:
        single = acme.call("POST", "/events", json={"type": "run.succeeded", "data": {},
                                            "orderingKey": key})
        assert single.status_code == 422, single.text
        batch = acme.call("POST", "/events/batch", json={"events": [
            {"type": "run.succeeded", "data": {}, "orderingKey": key}]})
        assert batch.status_code == 200, batch.text
        assert batch.json()["results"][0]["status"] == "error"
        assert batch.json()["results"][0]["field"] == "orderingKey"
