"""The management API on real PostgreSQL and Redis: CRUD, tenancy, idempotency, test sends,
delivery logs, resends and dead letters over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.receiver import Receiver, Route
from tests.integration.api_callers import Caller
from tests.integration.conftest import Stack
from tests.support import independently_verified, wait_until

pytestmark = pytest.mark.integration


def webhook_body(url: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint": url, "events": ["crew.status.changed", "Customer:*"], "enabled": True,
            **extra}


class TestWebhooksCrud:
    def test_create_read_list_update_and_delete(self, acme: Caller) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body(
            "http://127.0.0.1:9/hooks", contract="standard-webhooks", environment="staging",
            headers={"X-Route": "eu"}, timeoutSeconds=10, maxAttempts=3, description="eu"))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["signatureSecret"].startswith("whsec_")
        assert body["environment"] == "staging"
        assert body["timeoutSeconds"] == 10 and body["maxAttempts"] == 3
        webhook_id = body["id"]

        fetched = acme.call("GET", f"/webhooks/{webhook_id}").json()
        assert "signatureSecret" not in fetched
        assert fetched["events"] == ["crew.status.changed", "Customer:*"]

        patched = acme.call("PATCH", f"/webhooks/{webhook_id}",
                            json={"enabled": False, "events": ["*"]}).json()
        assert patched["enabled"] is False and patched["events"] == ["*"]
        assert "signatureSecret" not in patched
        reenabled = acme.call("PATCH", f"/webhooks/{webhook_id}", json={"enabled": True}).json()
        assert reenabled["enabled"] is True and reenabled["disabledReason"] is None
        limits = acme.call("PATCH", f"/webhooks/{webhook_id}",
                           json={"timeoutSeconds": 20, "maxAttempts": 4, "description": "eu-2"})
        assert limits.status_code == 200, limits.text
        assert (limits.json()["timeoutSeconds"], limits.json()["maxAttempts"],
                limits.json()["description"]) == (20, 4, "eu-2")

        rotated = acme.call("POST", f"/webhooks/{webhook_id}/secret/rotate",
                            json={"gracePeriodSeconds": 3600})
        assert rotated.status_code == 200
        assert rotated.json()["signatureSecret"] != body["signatureSecret"]
        assert rotated.json()["previousSecretValidUntil"] is not None

        assert acme.call("DELETE", f"/webhooks/{webhook_id}").status_code == 204
        assert acme.call("GET", f"/webhooks/{webhook_id}").status_code == 404
        assert acme.call("GET", "/webhooks").json()["items"] == []

    def test_the_list_is_paginated_with_a_cursor(self, acme: Caller) -> None:
        ids = [acme.call("POST", "/webhooks", json=webhook_body(f"http://127.0.0.1:9/{i}")).json()["id"]
               for i in range(5)]
        first = acme.call("GET", "/webhooks", params={"limit": 2}).json()
        second = acme.call("GET", "/webhooks", params={"limit": 2, "cursor": first["nextCursor"]}).json()
        third = acme.call("GET", "/webhooks", params={"limit": 2, "cursor": second["nextCursor"]}).json()
        seen = [w["id"] for page in (first, second, third) for w in page["items"]]
        assert seen == sorted(ids)
        assert third["nextCursor"] is None

    @pytest.mark.parametrize(("body", "field"), [
        ({"endpoint": "ftp://127.0.0.1/x", "events": ["*"]}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:9/x", "events": ["no.such_type"]}, "no.such_type"),
        ({"endpoint": "http://127.0.0.1:9/x", "events": ["*"], "colour": "red"}, "colour"),
        ({"endpoint": "http://127.0.0.1:9/x", "events": "*"}, "events"),
        ({"endpoint": "http://127.0.0.1:9/x", "events": ["*"], "timeoutSeconds": -1}, "timeoutSeconds"),
        ({"endpoint": "http://127.0.0.1:9/x", "events": ["*"], "contract": "svix"}, "contract"),
    ])
    def test_bad_input_is_422_naming_the_problem_and_creates_nothing(
        self, acme: Caller, body: dict[str, Any], field: str
    ) -> None:
        response = acme.call("POST", "/webhooks", json=body)
        assert response.status_code == 422
        assert field in response.text
        assert acme.call("GET", "/webhooks").json()["items"] == []

    def test_malformed_json_is_422(self, acme: Caller) -> None:
        response = acme.call("POST", "/webhooks", content=b"{not json",
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 422

    def test_a_body_over_the_limit_is_413(self, acme: Caller, stack: Stack) -> None:
        big = {"type": "crew.status.changed",
               "data": {"x": "a" * (stack.settings.api_max_request_bytes + 10)}}
        assert acme.call("POST", "/events", json=big).status_code == 413


class TestRefusedAtTheDoor:
    """What could never be sent is refused when it is configured: 422 naming it, nothing written."""

    @pytest.mark.parametrize(("extra", "named"), [
        ({"headers": {"X-Route": "\u20ac10"}}, "header 'X-Route': value has '\\u20ac'"),
        ({"headers": {"X-Route": "eu\x01"}}, "header 'X-Route': value has the control character"),
        ({"headers": {"X-Route": "eu\r\nX-Injected: 1"}}, "header 'X-Route': value has"),
        ({"headers": {"X-Route\n": "eu"}}, "invalid header name 'X-Route\\n'"),
        ({"contract": "cr3dentials", "authHeader": "X-Key\n"}, "auth header: invalid header name"),
        ({"contract": "cr3dentials", "authHeader": "X-\u20ac"}, "auth header: invalid header name"),
    ], ids=["euro-value", "control-value", "crlf-value", "newline-name", "newline-auth-header",
            "euro-auth-header"])
    def test_a_header_http_cannot_carry_is_422_on_create_and_update(
        self, acme: Caller, extra: dict[str, Any], named: str
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a", **extra))
        assert created.status_code == 422, created.text
        assert named in created.json()["detail"]
        assert acme.call("GET", "/webhooks").json()["items"] == []
        kept = acme.call("POST", "/webhooks", json=webhook_body(
            "http://127.0.0.1:9/a", contract=extra.get("contract", "crewpass"))).json()
        patched = acme.call("PATCH", f"/webhooks/{kept['id']}",
                            json={k: v for k, v in extra.items() if k != "contract"})
        assert patched.status_code == 422, patched.text
        assert named in patched.json()["detail"]
        after = acme.call("GET", f"/webhooks/{kept['id']}").json()
        assert (after["headers"], after["authHeader"]) == (kept["headers"], kept["authHeader"])

    @pytest.mark.parametrize(("url", "reason"), [
        ("https://a..test/hooks", "empty label"),
        ("https://" + "a" * 64 + ".test/hooks", "label over 63 characters"),
        ("https://" + ("a" * 63 + ".") * 4 + "test/hooks", "host over 253 characters"),
        ("https://a\u2024b.test/hooks", "not a valid internationalised domain name"),
    ], ids=["empty-label", "long-label", "long-name", "idna"])
    def test_a_host_dns_cannot_carry_is_422_on_create_update_and_as_a_one_off_url(
        self, acme: Caller, stack: Stack, url: str, reason: str
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body(url))
        assert created.status_code == 422 and reason in created.json()["detail"], created.text
        kept = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a")).json()
        patched = acme.call("PATCH", f"/webhooks/{kept['id']}", json={"endpoint": url})
        assert patched.status_code == 422 and reason in patched.json()["detail"], patched.text
        assert acme.call("GET", f"/webhooks/{kept['id']}").json()["endpoint"] == kept["endpoint"]
        one_off = acme.call("POST", "/events", json={
            "type": "crew.status.changed", "data": {}, "webhookUrl": url})
        assert one_off.status_code == 422 and reason in one_off.json()["detail"], one_off.text
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 0
        assert stack.sql("SELECT count(*) FROM endpoints")[0][0] == 1


class TestNoServerErrorOnInput:
    """Input that used to reach the database or recurse without limit is a 422 naming the field."""

    @pytest.mark.parametrize("depth", [65, 500, 900])
    def test_event_data_nested_past_64_levels_is_422_and_records_nothing(
        self, acme: Caller, stack: Stack, depth: int
    ) -> None:
        acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a"))
        raw = '{"type":"crew.status.changed","data":' + '{"d":' * depth + "1" + "}" * depth + "}"
        response = acme.call("POST", "/events", content=raw.encode(),
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text[:300]
        assert response.json() == {"detail": "data is JSON nested deeper than 64 levels"}
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 0

    @pytest.mark.parametrize(("method", "path", "body", "field"), [
        ("POST", "/webhooks", webhook_body("http://127.0.0.1:9/a", description="\ud800"),
         "description"),
        ("POST", "/webhooks", webhook_body("http://127.0.0.1:9/a", headers={"X-Route": "eu\ud800"}),
         "X-Route"),
        ("POST", "/webhooks", webhook_body("http://127.0.0.1:9/\ud800"), "endpoint"),
        ("POST", "/events", {"type": "crew.status.changed", "data": {},
                             "idempotencyKey": "k-\ud800"}, "idempotencyKey"),
        ("POST", "/incoming-webhooks", {"name": "CI \ud800", "eventType": "run.succeeded"}, "name"),
    ], ids=["description", "header-value", "url-path", "idempotency-key", "incoming-hook-name"])
    def test_a_lone_surrogate_is_422_naming_the_field_and_writes_nothing(
        self, acme: Caller, stack: Stack, method: str, path: str, body: dict[str, Any], field: str
    ) -> None:
        response = acme.call(method, path, content=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"][-1] == field
        assert "lone surrogate" in error["msg"]
        assert stack.sql("SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM events)"
                         " + (SELECT count(*) FROM incoming_webhooks)")[0][0] == 0

    def test_a_lone_surrogate_in_a_webhook_update_is_422_and_changes_nothing(
        self, acme: Caller
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a",
                                                                   description="eu")).json()
        for change in ({"description": "\ud800"}, {"headers": {"\udfff": "x"}},
                       {"endpoint": "http://127.0.0.1:9/\ud800"}):
            response = acme.call("PATCH", f"/webhooks/{created['id']}",
                                 content=json.dumps(change).encode(),
                                 headers={"Content-Type": "application/json"})
            assert response.status_code == 422, response.text
            assert "lone surrogate" in response.json()["detail"][0]["msg"]
        after = acme.call("GET", f"/webhooks/{created['id']}").json()
        assert (after["description"], after["headers"], after["endpoint"]) == (
            "eu", {}, "http://127.0.0.1:9/a")

    @pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
                             ids=["before-year-1-in-utc", "after-9999-in-utc"])
    def test_a_time_utc_cannot_hold_is_422_naming_the_field(self, acme: Caller, stack: Stack,
                                                            moment: str) -> None:
        webhook = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a")).json()
        log = f"/webhooks/{webhook['id']}/deliveries"
        for method, path, kwargs, loc in [
            ("POST", "/events", {"json": {"type": "crew.status.changed", "data": {},
                                          "occurredAt": moment}}, ["body", "occurredAt"]),
            ("GET", log, {"params": {"since": moment}}, ["query", "since"]),
            ("GET", log, {"params": {"until": moment}}, ["query", "until"]),
            ("GET", "/dead-letters", {"params": {"since": moment}}, ["query", "since"]),
            ("POST", "/dead-letters/requeue", {"json": {"filter": {"since": moment}}},
             ["body", "filter", "since"]),
        ]:
            response = acme.call(method, path, **kwargs)
            assert response.status_code == 422, (path, response.text)
            [error] = response.json()["detail"]
            assert error["loc"] == loc
            assert "outside years 1 to 9999 once converted to UTC" in error["msg"]
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 0

    @pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
    def test_a_number_json_cannot_carry_is_422_naming_the_field(self, acme: Caller,
                                                                number: str) -> None:
        webhook = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a")).json()
        for method, path, raw, field in [
            ("POST", "/webhooks", '{"endpoint": "http://127.0.0.1:9/b", "events": ["*"], '
                                  '"timeoutSeconds": %s}', "timeoutSeconds"),
            ("PATCH", f"/webhooks/{webhook['id']}", '{"timeoutSeconds": %s}', "timeoutSeconds"),
            ("POST", f"/webhooks/{webhook['id']}/test", '{"waitSeconds": %s}', "waitSeconds"),
        ]:
            response = acme.call(method, path, content=(raw % number).encode(),
                                 headers={"Content-Type": "application/json"})
            assert response.status_code == 422, (path, response.text)
            [error] = response.json()["detail"]
            assert (error["loc"][-1], error["msg"]) == (field, "Input should be a finite number")
        assert [w["id"] for w in acme.call("GET", "/webhooks").json()["items"]] == [webhook["id"]]
        assert acme.call("GET", f"/webhooks/{webhook['id']}").json()["timeoutSeconds"] is None


class TestTenancy:
    def test_a_missing_or_wrong_key_is_401(self, acme: Caller, client: TestClient) -> None:
        assert client.get(f"/api/{acme.tenant}/webhooks").status_code == 401
        assert client.get(f"/api/{acme.tenant}/webhooks",
                          headers={"X-API-KEY": "hl_wrong"}).status_code == 401

    def test_another_tenants_path_and_ids_are_404_on_every_route(self, acme: Caller,
                                                                 globex: Caller) -> None:
        webhook = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a")).json()
        event = acme.call("POST", "/events", json={"type": "crew.status.changed",
                                                   "data": {"crew_id": "c1"}}).json()
        [delivery_id] = event["deliveryIds"]
        foreign_path = Caller(globex.client, acme.tenant, globex.key)
        wid = webhook["id"]
        for method, path, body in [
            ("GET", "/webhooks", None), ("POST", "/webhooks", webhook_body("http://127.0.0.1:9/b")),
            ("POST", "/events", {"type": "crew.status.changed", "data": {}}),
            ("GET", "/dead-letters", None), ("POST", "/dead-letters/requeue", {"all": True}),
        ]:
            response = foreign_path.call(method, path, json=body)
            assert response.status_code == 404, (method, path)
        for method, path, body in [
            ("GET", f"/webhooks/{wid}", None), ("PATCH", f"/webhooks/{wid}", {"enabled": False}),
            ("DELETE", f"/webhooks/{wid}", None), ("POST", f"/webhooks/{wid}/secret/rotate", {}),
            ("POST", f"/webhooks/{wid}/test", {}), ("GET", f"/webhooks/{wid}/deliveries", None),
            ("GET", f"/events/{event['id']}", None), ("GET", f"/deliveries/{delivery_id}", None),
            ("POST", f"/deliveries/{delivery_id}/retry", None),
        ]:
            response = globex.call(method, path, json=body)
            assert response.status_code == 404, (method, path)
            assert acme.tenant not in response.text and wid not in response.text
        requeue = globex.call("POST", "/dead-letters/requeue", json={"ids": [delivery_id]})
        assert requeue.status_code == 422 and "no such delivery" in requeue.text
        assert acme.call("GET", f"/webhooks/{wid}").json()["enabled"] is True


class TestEvents:
    def test_a_repeated_idempotency_key_returns_the_first_event_and_fans_out_nothing(
        self, acme: Caller
    ) -> None:
        acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/a"))
        body = {"type": "crew.status.changed", "data": {"crew_id": "c1"}, "idempotencyKey": "k-1"}
        first = acme.call("POST", "/events", json=body)
        again = acme.call("POST", "/events", json=body)
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["created"] is False
        shown = acme.call("GET", f"/events/{first.json()['id']}").json()
        assert len(shown["deliveries"]) == 1

    def test_an_unknown_event_type_is_422_naming_it(self, acme: Caller) -> None:
        response = acme.call("POST", "/events", json={"type": "crew.teleported", "data": {}})
        assert response.status_code == 422 and "crew.teleported" in response.text

    def test_an_event_reaches_only_webhooks_of_its_environment(self, acme: Caller) -> None:
        prod = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/p")).json()
        staging = acme.call("POST", "/webhooks", json=webhook_body(
            "http://127.0.0.1:9/s", environment="staging")).json()
        event = acme.call("POST", "/events", json={"type": "crew.status.changed", "data": {},
                                                   "environment": "staging"}).json()
        targets = {d["webhookId"] for d in acme.call("GET", f"/events/{event['id']}").json()["deliveries"]}
        assert targets == {staging["id"]}
        assert prod["id"] not in targets

    def test_the_catalogue_lists_crewpass_types_with_their_scopes(self, client: TestClient) -> None:
        types = {t["name"]: t for t in client.get("/api/event-types").json()}
        assert types["crew.status.changed"]["scope"] == "crew:status:subscribe"
        assert "Customer:Upserted" in types


class TestThroughThePipeline:
    def test_a_test_send_reaches_a_real_receiver_and_returns_the_attempt(
        self, acme: Caller, stack: Stack, receiver: Receiver
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body(
            receiver.url("/t"), contract="crewship")).json()
        secret = created["signatureSecret"]
        receiver.route("/t", Route(verify=lambda h, b: independently_verified("crewship", secret, h, b)))
        stack.worker()
        result = acme.call("POST", f"/webhooks/{created['id']}/test", json={"waitSeconds": 20})
        assert result.status_code == 200, result.text
        body = result.json()
        assert body["finished"] is True and body["state"] == "succeeded"
        assert body["attempt"]["statusCode"] == 200
        [request] = receiver.for_path("/t")
        assert request.verified is True
        assert request.headers["X-Crewship-Event"] == "hookline.ping"

    def test_delivery_logs_show_503_then_200_and_retry_resends(
        self, acme: Caller, stack: Stack, receiver: Receiver
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body(receiver.url("/flaky"))).json()
        receiver.route("/flaky", Route(statuses=[503, 200, 200]))
        stack.worker()
        event = acme.call("POST", "/events", json={"type": "crew.status.changed",
                                                   "data": {"crew_id": "c9"}}).json()
        wait_until(lambda: len(receiver.for_path("/flaky")) == 2, what="503 then 200")
        log_path = f"/webhooks/{created['id']}/deliveries"
        wait_until(lambda: acme.call("GET", log_path).json()["items"][0]["state"] == "succeeded",
                   what="the log to show success")
        [entry] = acme.call("GET", log_path, params={"status": "succeeded"}).json()["items"]
        assert [a["statusCode"] for a in entry["attempts"]] == [503, 200]
        assert all(a["durationMs"] is not None and a["startedAt"] for a in entry["attempts"])
        assert acme.call("GET", log_path, params={"status": "dead"}).json()["items"] == []

        resent = acme.call("POST", f"/deliveries/{event['deliveryIds'][0]}/retry")
        assert resent.status_code == 200
        wait_until(lambda: len(receiver.for_path("/flaky")) == 3, what="the resend")

    def test_dead_letters_are_listed_and_requeued_over_http(
        self, acme: Caller, stack: Stack, receiver: Receiver
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body(receiver.url("/rej"))).json()
        route = Route(statuses=[400])
        receiver.route("/rej", route)
        stack.worker()
        acme.call("POST", "/events", json={"type": "crew.status.changed", "data": {}})
        wait_until(lambda: acme.call("GET", "/dead-letters").json()["items"], what="a dead letter")
        [dead] = acme.call("GET", "/dead-letters").json()["items"]
        assert dead["reason"] == "permanent_4xx" and dead["lastStatusCode"] == 400
        assert dead["webhookId"] == created["id"]

        route.statuses = [200]
        report = acme.call("POST", "/dead-letters/requeue",
                           json={"filter": {"webhookId": created["id"]}}).json()
        assert report["requeued"] == [dead["deliveryId"]]
        wait_until(lambda: acme.call("GET", f"/deliveries/{dead['deliveryId']}").json()["state"]
                   == "succeeded", what="the requeued delivery to succeed")
        again = acme.call("POST", "/dead-letters/requeue", json={"ids": [dead["deliveryId"]]}).json()
        assert again["requeued"] == [] and again["notDead"] == [dead["deliveryId"]]

    def test_a_one_off_webhook_url_gets_a_generated_secret_never_the_tenants_webhooks_credentials(
        self, acme: Caller, stack: Stack, receiver: Receiver
    ) -> None:
        account = acme.call("POST", "/webhooks", json={
            "endpoint": receiver.url("/account"), "events": ["session.*"],
            "contract": "cr3dentials", "authHeader": "X-Partner-Key",
            "headers": {"Authorization": "Bearer partner-live"}}).json()
        receiver.route("/account")
        receiver.route("/session-s7")
        stack.worker()
        event = acme.call("POST", "/events", json={
            "type": "session.completed", "data": {"sessionId": "s7"},
            "webhookUrl": receiver.url("/session-s7")})
        assert event.status_code == 202, event.text
        secret = event.json()["webhookSecret"]
        assert secret.startswith("c3k_") and secret != account["signatureSecret"]
        wait_until(lambda: receiver.for_path("/session-s7"), what="the one-off delivery")
        [request] = receiver.for_path("/session-s7")
        assert request.headers["X-Partner-Key"] == secret
        assert "Authorization" not in request.headers
        assert account["signatureSecret"] not in str(request.headers)
        assert receiver.for_path("/account") == []
        again = acme.call("POST", "/events", json={
            "type": "session.completed", "data": {"sessionId": "s7"},
            "webhookUrl": receiver.url("/session-s7")})
        assert again.status_code == 200 and "webhookSecret" not in again.json()
        assert [w["id"] for w in acme.call("GET", "/webhooks").json()["items"]] == [account["id"]]
        refused = acme.call("POST", "/events", json={
            "type": "session.completed", "data": {"sessionId": "s8"},
            "webhookUrl": "http://169.254.169.254/latest"})
        assert refused.status_code == 422 and "169.254.169.254" in refused.text

    def test_a_one_off_webhook_url_is_signed_with_the_secret_the_caller_names(
        self, acme: Caller, stack: Stack, receiver: Receiver
    ) -> None:
        acme.call("POST", "/webhooks", json={"endpoint": receiver.url("/account"),
                                             "events": ["run.*"], "contract": "crewship"})
        named = "run-1042-secret-known-to-ci"
        receiver.route("/run-1042", Route(
            verify=lambda h, b: independently_verified("crewship", named, h, b)))
        stack.worker()
        event = acme.call("POST", "/events", json={
            "type": "run.succeeded", "data": {"run_id": "1042"},
            "webhookUrl": receiver.url("/run-1042"), "webhookSecret": named})
        assert event.status_code == 202, event.text
        assert "webhookSecret" not in event.json()
        wait_until(lambda: receiver.for_path("/run-1042"), what="the one-off delivery")
        [request] = receiver.for_path("/run-1042")
        assert request.verified is True and request.headers["X-Crewship-Event"] == "run.succeeded"

    def test_a_webhook_secret_without_a_url_or_unfit_for_the_contract_is_422_and_writes_nothing(
        self, acme: Caller, stack: Stack
    ) -> None:
        acme.call("POST", "/webhooks", json={"endpoint": "http://127.0.0.1:9/account",
                                             "events": ["session.*"],
                                             "contract": "standard-webhooks"})
        alone = acme.call("POST", "/events", json={
            "type": "session.completed", "data": {"sessionId": "s1"},
            "webhookSecret": "whsec_" + "a" * 44})
        assert alone.status_code == 422 and "needs webhookUrl" in alone.text
        unfit = acme.call("POST", "/events", json={
            "type": "session.completed", "data": {"sessionId": "s1"},
            "webhookUrl": "http://127.0.0.1:9/s1", "webhookSecret": "not-a-whsec-secret"})
        assert unfit.status_code == 422 and "whsec_" in unfit.text
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 0
        assert stack.sql("SELECT count(*) FROM endpoints")[0][0] == 1

    def test_deleting_a_webhook_dead_letters_what_waits_for_it(
        self, acme: Caller, stack: Stack
    ) -> None:
        created = acme.call("POST", "/webhooks", json=webhook_body("http://127.0.0.1:9/none")).json()
        event = acme.call("POST", "/events", json={"type": "crew.status.changed", "data": {}}).json()
        assert acme.call("DELETE", f"/webhooks/{created['id']}").status_code == 204
        [dead] = acme.call("GET", "/dead-letters", params={"reason": "endpoint_deleted"}).json()["items"]
        assert dead["deliveryId"] == event["deliveryIds"][0]


class TestHealth:
    def test_healthz_and_readyz_answer(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "database": True, "broker": True}
