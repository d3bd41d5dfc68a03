"""Test sends over the management API on real PostgreSQL and Redis: a test send waiting
for its attempt holds no worker thread of the API, and each tenant may keep only so
many waiting at once; a test send is always a new delivery to exactly its webhook."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from tests.integration.api_callers import Caller, tenant_caller
from tests.integration.conftest import Stack
from tests.support import wait_until

pytestmark = pytest.mark.integration

#: More test sends than the API's shared pool has worker threads (anyio's default, 40).
CROWD = 48


def deliveries(stack: Stack) -> int:
    return int(stack.sql("SELECT count(*) FROM deliveries")[0][0])


class TestWaiting:
    def test_another_tenants_calls_answer_fast_while_one_tenant_holds_many_test_sends_open(
        self, make_stack: Callable[..., Stack]
    ) -> None:
        """No worker runs, so every test send waits its whole waitSeconds."""
        stack = make_stack(api_waiting_test_sends=CROWD)
        with TestClient(create_app(stack.hookline)) as client:
            acme = tenant_caller(stack, client, "acme")
            globex = tenant_caller(stack, client, "globex")
            webhook = acme.call("POST", "/webhooks", json={
                "endpoint": "http://127.0.0.1:9/acme", "events": ["*"]}).json()
            globex.call("POST", "/webhooks", json={"endpoint": "http://127.0.0.1:9/globex",
                                                   "events": ["*"]})
            test_path = f"/webhooks/{webhook['id']}/test"
            with ThreadPoolExecutor(CROWD) as pool:
                waiting = [pool.submit(acme.call, "POST", test_path, json={"waitSeconds": 6})
                           for _ in range(CROWD)]
                wait_until(lambda: deliveries(stack) >= 40, timeout=5, what="40 test sends waiting")
                # Let the burst of publishes settle: what must not starve the API is the waiting.
                time.sleep(1)
                started = time.monotonic()
                listed = globex.call("GET", "/webhooks")
                elapsed = time.monotonic() - started
                assert listed.status_code == 200 and len(listed.json()["items"]) == 1
                assert elapsed < 0.5, f"GET /webhooks took {elapsed:.2f} s"
                wait_until(lambda: deliveries(stack) == CROWD, timeout=5, what="every test send")
                assert [f.result().status_code for f in waiting] == [202] * CROWD

    def test_a_tenants_test_sends_over_its_limit_are_429_with_retry_after_and_send_nothing(
        self, make_stack: Callable[..., Stack]
    ) -> None:
        stack = make_stack(api_waiting_test_sends=3)
        with TestClient(create_app(stack.hookline)) as client:
            acme = tenant_caller(stack, client, "acme")
            globex = tenant_caller(stack, client, "globex")
            paths = {}
            for caller in (acme, globex):
                created = caller.call("POST", "/webhooks", json={
                    "endpoint": f"http://127.0.0.1:9/{caller.tenant}", "events": ["*"]}).json()
                paths[caller.tenant] = f"/webhooks/{created['id']}/test"
            with ThreadPoolExecutor(3) as pool:
                waiting = [pool.submit(acme.call, "POST", paths[acme.tenant],
                                       json={"waitSeconds": 4}) for _ in range(3)]
                wait_until(lambda: deliveries(stack) == 3, timeout=5, what="3 test sends waiting")
                refused = acme.call("POST", paths[acme.tenant], json={"waitSeconds": 4})
                assert refused.status_code == 429, refused.text
                assert 1 <= int(refused.headers["Retry-After"]) <= 4
                assert "too many test sends waiting: a tenant may keep at most 3" in refused.json()["detail"]
                assert deliveries(stack) == 3
                unwaited = acme.call("POST", paths[acme.tenant], json={"waitSeconds": 0})
                assert unwaited.status_code == 202
                other = globex.call("POST", paths[globex.tenant], json={"waitSeconds": 0.2})
                assert other.status_code == 202
                assert [f.result().status_code for f in waiting] == [202] * 3
            again = acme.call("POST", paths[acme.tenant], json={"waitSeconds": 0.2})
            assert again.status_code == 202


class TestTypesKeyedByTheirData:
    """``session.*`` events take ``sessionId:<id>`` as their idempotency key when none is given."""

    @pytest.mark.parametrize("earlier_subscribers", [0, 1, 2])
    def test_a_test_send_matching_an_earlier_event_is_a_new_delivery_to_the_chosen_webhook_only(
        self, acme: Caller, stack: Stack, earlier_subscribers: int
    ) -> None:
        for n in range(earlier_subscribers):
            acme.call("POST", "/webhooks", json={"endpoint": f"http://127.0.0.1:9/account{n}",
                                                 "events": ["session.*"], "contract": "cr3dentials"})
        earlier = acme.call("POST", "/events", json={"type": "session.completed",
                                                     "data": {"sessionId": "s1"}}).json()
        assert len(earlier["deliveryIds"]) == earlier_subscribers
        chosen = acme.call("POST", "/webhooks", json={
            "endpoint": "http://127.0.0.1:9/chosen", "events": ["crew.status.changed"],
            "contract": "cr3dentials"}).json()

        sent = acme.call("POST", f"/webhooks/{chosen['id']}/test", json={
            "eventType": "session.completed", "data": {"sessionId": "s1"}, "waitSeconds": 0})

        assert sent.status_code == 202, sent.text
        assert sent.json()["eventId"] != earlier["id"]
        assert sent.json()["deliveryId"] not in earlier["deliveryIds"]
        event = acme.call("GET", f"/events/{sent.json()['eventId']}").json()
        assert [(d["id"], d["webhookId"]) for d in event["deliveries"]] == [
            (sent.json()["deliveryId"], chosen["id"])]
        assert stack.sql("SELECT count(*) FROM deliveries")[0][0] == earlier_subscribers + 1

    def test_a_test_send_leaves_the_key_free_for_the_real_event(self, acme: Caller) -> None:
        account = acme.call("POST", "/webhooks", json={
            "endpoint": "http://127.0.0.1:9/account", "events": ["session.*"],
            "contract": "cr3dentials"}).json()
        sent = acme.call("POST", f"/webhooks/{account['id']}/test", json={
            "eventType": "session.completed", "data": {"sessionId": "s5"}, "waitSeconds": 0})
        assert sent.status_code == 202, sent.text

        real = acme.call("POST", "/events", json={"type": "session.completed",
                                                  "data": {"sessionId": "s5"}})

        assert real.status_code == 202 and real.json()["created"] is True
        assert real.json()["id"] != sent.json()["eventId"]
        assert len(real.json()["deliveryIds"]) == 1
