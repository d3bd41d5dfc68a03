"""Incoming webhooks on real PostgreSQL, Redis, a worker process and a loopback receiver:
a call to a hook's URL becomes an event delivered like any other; nothing else gets in."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import cli
from app.inbound import generate_token
from app.receiver import Receiver, Route
from tests.integration.api_callers import Caller
from tests.integration.conftest import Stack
from tests.support import crewpass_signature_ok, wait_until

pytestmark = pytest.mark.integration


def create_hook(caller: Caller, **extra: Any) -> dict[str, Any]:
    response = caller.call("POST", "/incoming-webhooks",
                           json={"name": "CI runs", "eventType": "run.succeeded", **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def call(client: TestClient, url: str, **kwargs: Any) -> Any:
    """POST to a hook's URL as a sender would, with no API key."""
    return client.post(urlsplit(url).path, **kwargs)


def events_in_database(stack: Stack) -> int:
    return int(stack.sql("SELECT count(*) FROM events")[0][0])


def subscribe(caller: Caller, receiver: Receiver, path: str, events: list[str],
              environment: str) -> str:
    """A crewpass webhook of *caller* on *path* whose receiver checks every signature."""
    created = caller.call("POST", "/webhooks", json={
        "endpoint": receiver.url(path), "events": events, "environment": environment}).json()
    secret = created["signatureSecret"]
    receiver.route(path, Route(verify=lambda h, b: crewpass_signature_ok(secret, h, b)))
    return str(created["id"])


class TestCallsBecomeEvents:
    """A call publishes the hook's event type, for its tenant, to its environment's webhooks."""

    def test_both_matching_webhooks_get_that_event_signed_and_the_other_environment_nothing(
        self, acme: Caller, client: TestClient, stack: Stack, receiver: Receiver
    ) -> None:
        hook = create_hook(acme, environment="staging")
        assert hook["url"] == f"{stack.settings.resolved_public_url}/hooks/{hook['token']}"
        assert hook["token"].startswith("hlin_") and hook["tokenPrefix"] == hook["token"][:12]
        exact = subscribe(acme, receiver, "/exact", ["run.succeeded"], "staging")
        wildcard = subscribe(acme, receiver, "/runs", ["run.*"], "staging")
        production = subscribe(acme, receiver, "/production", ["*"], "production")
        stack.worker()

        answer = call(client, hook["url"], json={"run_id": "r-1", "status": "green"})

        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert (accepted["eventType"], accepted["environment"], accepted["created"]) == (
            "run.succeeded", "staging", True)
        event_id = accepted["eventId"]
        wait_until(lambda: receiver.accepted("/exact") and receiver.accepted("/runs"),
                   what="both staging webhooks to receive the event")
        for path in ("/exact", "/runs"):
            [request] = receiver.for_path(path)
            assert (request.event_id, request.verified, request.status) == (event_id, True, 200)
        # The fan-out is decided when the event is written: no delivery exists for the
        # production webhook, so nothing can reach it later.
        targets = {row[0] for row in stack.sql(
            "SELECT endpoint_id FROM deliveries WHERE event_id = :e", e=event_id)}
        assert targets == {exact, wildcard}
        assert production not in targets and receiver.for_path("/production") == []
        shown = acme.call("GET", f"/events/{event_id}").json()
        assert shown["data"] == {"run_id": "r-1", "status": "green"}
        assert acme.call("GET", f"/incoming-webhooks/{hook['id']}").json()["lastUsedAt"] is not None

    def test_a_repeated_idempotency_key_answers_the_first_event_like_the_events_route(
        self, acme: Caller, client: TestClient, stack: Stack
    ) -> None:
        hook = create_hook(acme)
        first = call(client, hook["url"], json={"n": 1}, headers={"Idempotency-Key": "gh-delivery-7"})
        again = call(client, hook["url"], json={"n": 2}, headers={"Idempotency-Key": "gh-delivery-7"})
        other = call(client, hook["url"], json={"n": 3}, headers={"Idempotency-Key": "gh-delivery-8"})
        assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
        assert again.json()["eventId"] == first.json()["eventId"] != other.json()["eventId"]
        assert again.json()["created"] is False
        assert events_in_database(stack) == 2
        assert acme.call("GET", f"/events/{first.json()['eventId']}").json()["data"] == {"n": 1}

    def test_a_callers_idempotency_key_cannot_reach_the_tenants_own_events(
        self, acme: Caller, client: TestClient
    ) -> None:
        published = acme.call("POST", "/events", json={
            "type": "run.succeeded", "data": {}, "idempotencyKey": "order-42"}).json()
        hook = create_hook(acme)
        answer = call(client, hook["url"], json={}, headers={"Idempotency-Key": "order-42"})
        assert answer.status_code == 202 and answer.json()["eventId"] != published["id"]


class TestRefusals:
    """Anything but a JSON object to a live hook publishes nothing, and says why."""

    def test_unknown_and_malformed_tokens_are_404(self, acme: Caller, client: TestClient,
                                                  stack: Stack) -> None:
        create_hook(acme)
        for path in (f"/hooks/{generate_token()}", "/hooks/garbage", "/hooks/%00", "/hooks/hlin_%FF",
                     f"/hooks/{'a' * 5000}"):
            answer = client.post(path, json={"a": 1})
            assert (answer.status_code, answer.json()) == (404, {"detail": "not found"}), path
        assert events_in_database(stack) == 0

    def test_a_body_that_is_not_json_is_400(self, acme: Caller, client: TestClient,
                                            stack: Stack) -> None:
        hook = create_hook(acme)
        answer = call(client, hook["url"], content=b"{not json",
                      headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and "not valid JSON" in answer.json()["detail"]
        assert call(client, hook["url"]).status_code == 400
        assert events_in_database(stack) == 0

    def test_json_that_is_not_an_object_is_400_saying_so(self, acme: Caller, client: TestClient,
                                                         stack: Stack) -> None:
        hook = create_hook(acme)
        answer = call(client, hook["url"], json=[{"run_id": "r-1"}])
        assert answer.status_code == 400
        assert answer.json()["detail"] == "the body must be a JSON object, not an array"
        assert events_in_database(stack) == 0

    def test_an_oversized_body_is_413(self, acme: Caller, client: TestClient, stack: Stack) -> None:
        hook = create_hook(acme)
        over_request = {"x": "a" * (stack.settings.api_max_request_bytes + 10)}
        assert call(client, hook["url"], json=over_request).status_code == 413
        over_payload = {"x": "a" * stack.settings.max_payload_bytes}
        assert stack.settings.max_payload_bytes + 100 < stack.settings.api_max_request_bytes
        answer = call(client, hook["url"], json=over_payload)
        assert answer.status_code == 413 and "over the limit" in answer.json()["detail"]
        assert events_in_database(stack) == 0

    def test_a_hook_whose_event_type_left_the_catalogue_is_409(
        self, acme: Caller, client: TestClient, stack: Stack
    ) -> None:
        hook = create_hook(acme)
        with stack.hookline.engine.begin() as connection:
            connection.execute(text("UPDATE incoming_webhooks SET event_type = 'run.retired' "
                                    "WHERE id = :id"), {"id": hook["id"]})
        answer = call(client, hook["url"], json={"run_id": "r-1"})
        assert answer.status_code == 409
        assert answer.json() == {"detail": "this hook's event type is no longer in the catalogue"}
        assert events_in_database(stack) == 0

    def test_a_revoked_hook_is_404_like_an_unknown_one_and_publishes_nothing(
        self, acme: Caller, client: TestClient, stack: Stack, receiver: Receiver
    ) -> None:
        hook = create_hook(acme)
        subscribe(acme, receiver, "/runs", ["run.*"], "production")
        stack.worker()
        assert call(client, hook["url"], json={"before": True}).status_code == 202
        wait_until(lambda: receiver.accepted("/runs"), what="the call before revocation")

        assert acme.call("DELETE", f"/incoming-webhooks/{hook['id']}").status_code == 204

        revoked = call(client, hook["url"], json={"after": True})
        unknown = client.post(f"/hooks/{generate_token()}", json={"after": True})
        assert (revoked.status_code, revoked.json()) == (unknown.status_code, unknown.json())
        assert revoked.status_code == 404
        assert events_in_database(stack) == 1
        assert acme.call("GET", f"/incoming-webhooks/{hook['id']}").status_code == 404
        assert acme.call("DELETE", f"/incoming-webhooks/{hook['id']}").status_code == 404
        assert acme.call("GET", "/incoming-webhooks").json()["items"] == []


class TestSecrecyAndTenancy:
    """The token is shown once and stored only as a digest; other tenants see nothing."""

    def test_the_token_is_stored_only_as_its_sha256(self, acme: Caller, stack: Stack) -> None:
        hook = create_hook(acme)
        [row] = stack.sql("SELECT * FROM incoming_webhooks")
        assert hook["token"] not in repr(tuple(row))
        assert row._mapping["token_hash"] == hashlib.sha256(hook["token"].encode()).hexdigest()

    def test_reads_and_lists_never_show_the_token_again(self, acme: Caller) -> None:
        hook = create_hook(acme)
        listed = acme.call("GET", "/incoming-webhooks").json()
        fetched = acme.call("GET", f"/incoming-webhooks/{hook['id']}").json()
        for shown in (listed["items"][0], fetched):
            assert "token" not in shown and "url" not in shown
            assert shown["tokenPrefix"] == hook["tokenPrefix"] and shown["id"] == hook["id"]
        assert hook["token"] not in repr(listed) + repr(fetched)

    def test_another_tenant_can_neither_list_read_nor_revoke_the_hook(
        self, acme: Caller, globex: Caller, client: TestClient
    ) -> None:
        hook = create_hook(acme)
        foreign_path = Caller(globex.client, acme.tenant, globex.key)
        assert foreign_path.call("GET", "/incoming-webhooks").status_code == 404
        assert foreign_path.call("POST", "/incoming-webhooks",
                                 json={"name": "x", "eventType": "run.failed"}).status_code == 404
        for method in ("GET", "DELETE"):
            answer = globex.call(method, f"/incoming-webhooks/{hook['id']}")
            assert answer.status_code == 404 and hook["id"] not in answer.text
        assert globex.call("GET", "/incoming-webhooks").json()["items"] == []
        assert call(client, hook["url"], json={}).status_code == 202

    def test_creation_refuses_unknown_event_types_naming_them(self, acme: Caller) -> None:
        answer = acme.call("POST", "/incoming-webhooks",
                           json={"name": "x", "eventType": "run.teleported"})
        assert answer.status_code == 422 and "run.teleported" in answer.text
        wrong_environment = acme.call("POST", "/incoming-webhooks",
                                      json={"name": "x", "eventType": "run.failed", "environment": "qa"})
        assert wrong_environment.status_code == 422
        assert acme.call("GET", "/incoming-webhooks").json()["items"] == []


class TestCommandLine:
    """``hookline hooks`` creates (URL shown once), lists and revokes."""

    def test_create_list_and_revoke(self, stack: Stack, client: TestClient,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in stack.env.items():
            if key.startswith("HOOKLINE_"):
                monkeypatch.setenv(key, value)
        runner = CliRunner()
        assert runner.invoke(cli, ["tenants", "create", "acme"]).exit_code == 0

        created = runner.invoke(cli, ["hooks", "create", "--tenant", "acme", "--name", "CI",
                                      "--event-type", "run.failed", "--environment", "staging"])
        assert created.exit_code == 0, created.output
        [url] = [line.split()[1] for line in created.output.splitlines() if line.startswith("url ")]
        hook_id = created.output.split()[1]
        assert created.output.splitlines()[0].split() == ["hook", hook_id, "run.failed", "(staging)"]
        assert url.startswith(f"{stack.settings.resolved_public_url}/hooks/hlin_")

        listed = runner.invoke(cli, ["hooks", "list", "--tenant", "acme"])
        assert listed.exit_code == 0 and hook_id in listed.output
        assert urlsplit(url).path.rsplit("/", 1)[1] not in listed.output
        assert call(client, url, json={"run_id": "r-9"}).status_code == 202

        revoked = runner.invoke(cli, ["hooks", "revoke", hook_id])
        assert (revoked.exit_code, revoked.output.strip()) == (0, f"hook {hook_id} revoked")
        again = runner.invoke(cli, ["hooks", "revoke", hook_id])
        assert again.exit_code == 0 and "nothing to do" in again.output
        assert call(client, url, json={}).status_code == 404
        unknown = runner.invoke(cli, ["hooks", "revoke", "inh_nope"])
        assert unknown.exit_code == 2 and "unknown incoming webhook" in unknown.output
        wrong = runner.invoke(cli, ["hooks", "create", "--tenant", "acme", "--name", "x",
                                    "--event-type", "run.teleported"])
        assert wrong.exit_code == 2 and "run.teleported" in wrong.output
