"""POST /api/{tenantId}/events/batch on real PostgreSQL and Redis: per-item results,
idempotency per event, limits, tenancy, and delivery of the written events."""

from __future__ import annotations

from typing import Any

import pytest

from app.receiver import Receiver
from tests.integration.api_callers import Caller
from tests.integration.conftest import Stack
from tests.support import wait_until

pytestmark = pytest.mark.integration


def webhook(caller: Caller, url: str) -> dict[str, Any]:
    response = caller.call("POST", "/webhooks", json={"endpoint": url,
                                                      "events": ["crew.status.changed"]})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "crew.status.changed", "data": {"crew_id": f"c{n}"}, **extra}


class TestBatchPublishing:
    """Each item is validated and answered on its own; good items are written, bad ones not."""

    def test_good_items_are_created_and_bad_ones_reported_by_index_and_field(
        self, acme: Caller, stack: Stack
    ) -> None:
        webhook(acme, "http://127.0.0.1:9/a")
        events = [item(0), {"type": "crew.teleported", "data": {}}, item(2),
                  {"type": "crew.status.changed", "data": [1]},
                  item(4, occurredAt="0001-01-01T00:00:00+14:00"), item(5, extra=1)]
        response = acme.call("POST", "/events/batch", json={"events": events})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["created"], body["existing"], body["errors"]) == (2, 0, 4)
        by_index = {r["index"]: r for r in body["results"]}
        assert [by_index[i]["status"] for i in range(6)] == [
            "created", "error", "created", "error", "error", "error"]
        assert by_index[1]["field"] == "type" and "crew.teleported" in by_index[1]["error"]
        assert by_index[3]["field"] == "data"
        assert by_index[4]["field"] == "occurredAt"
        assert by_index[5]["field"] == "extra"
        assert len(by_index[0]["deliveryIds"]) == 1
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 2
        assert stack.sql("SELECT count(*) FROM deliveries")[0][0] == 2

    def test_an_idempotency_key_is_honoured_per_event_within_and_across_batches(
        self, acme: Caller, stack: Stack
    ) -> None:
        webhook(acme, "http://127.0.0.1:9/a")
        first = acme.call("POST", "/events/batch", json={"events": [
            item(0, idempotencyKey="k"), item(1, idempotencyKey="k")]}).json()
        again = acme.call("POST", "/events/batch", json={"events": [
            item(0, idempotencyKey="k")]}).json()
        one, two = first["results"]
        assert (one["status"], two["status"]) == ("created", "existing")
        assert two["id"] == one["id"] and two["deliveryIds"] == one["deliveryIds"]
        assert again["results"][0]["status"] == "existing"
        assert again["results"][0]["id"] == one["id"]
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 1

    def test_more_than_a_thousand_events_is_refused_naming_the_limit(
        self, acme: Caller, stack: Stack
    ) -> None:
        response = acme.call("POST", "/events/batch",
                             json={"events": [item(n) for n in range(1001)]})
        assert response.status_code == 422
        assert "1000" in response.text
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 0

    def test_a_batch_over_the_request_size_limit_is_413(self, acme: Caller, stack: Stack) -> None:
        limit = stack.settings.api_max_batch_request_bytes
        big = {"notes": "x" * 200_000}
        events = [item(n) | {"data": big} for n in range(limit // 200_000 + 2)]
        response = acme.call("POST", "/events/batch", json={"events": events})
        assert response.status_code == 413 and str(limit) in response.text

    def test_another_tenants_batch_path_is_404(self, acme: Caller, globex: Caller) -> None:
        response = acme.client.post(f"/api/{globex.tenant}/events/batch",
                                    headers={"X-API-KEY": acme.key}, json={"events": [item(0)]})
        assert response.status_code == 404

    def test_the_written_events_are_delivered(self, acme: Caller, stack: Stack,
                                              receiver: Receiver) -> None:
        webhook(acme, receiver.route("/batch"))
        stack.worker()
        body = acme.call("POST", "/events/batch",
                         json={"events": [item(n) for n in range(50)]}).json()
        assert body["created"] == 50
        wait_until(lambda: stack.sql(
            "SELECT count(*) FROM deliveries WHERE state = 'succeeded'")[0][0] == 50,
            timeout=30, what="50 deliveries recorded as succeeded")
        assert len({r.event_id for r in receiver.for_path("/batch")}) == 50
