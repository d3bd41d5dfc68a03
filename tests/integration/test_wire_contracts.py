"""Every wire contract end to end: a real worker sends, a loopback receiver checks each
delivery with the verification its product documents (written in tests/support.py, not
Hookline's code) and, for Standard Webhooks, with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import pytest

from app import admin
from app.receiver import Receiver, Route
from tests.integration.conftest import Stack
from tests.support import (
    cr3dentials_auth_ok,
    crewpass_signature_ok,
    crewship_signature_ok,
    independently_verified,
    standard_webhooks_ok,
    wait_until,
)

pytestmark = pytest.mark.integration

CONTRACTS = ["crewpass", "crewship", "cr3dentials", "wallet-crew", "standard-webhooks"]
#: What each contract's receiver dedupes on.
DEDUPE_KEY = {
    "crewpass": lambda h, b: h.get("X-CrewPass-Event-Id", ""),
    "crewship": lambda h, b: h.get("X-Crewship-Delivery", ""),
    "cr3dentials": lambda h, b: json.loads(b)["sessionId"],
    "wallet-crew": lambda h, b: json.loads(b)["__id"],
    "standard-webhooks": lambda h, b: h.get("webhook-id", ""),
}
SESSION = {"sessionId": "0b7c6a52-2a1e-4c5f-9f59-7f0d3c1e9a11", "platformId": 3,
           "externalReferenceId": "user_77", "extractedData": {"accountType": "savings"},
           "proofHash": "5e884898", "metadata": {"channel": "api", "_operator": "ops-7"},
           "_provider": "Internal Provider Ltd", "attestation": "raw-attestation-bytes"}


def endpoint_for(stack: Stack, receiver: Receiver, contract: str, *, events: list[str],
                 route: Route | None = None) -> tuple[str, str]:
    created = admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue, tenant="acme",
                                 url=receiver.url(f"/{contract}"), events=events, contract=contract,
                                 policy=stack.hookline.egress_policy)
    chosen = route or Route()
    secret = created.secret
    chosen.verify = lambda headers, body: independently_verified(contract, secret, headers, body)
    chosen.event_id_of = DEDUPE_KEY[contract]
    receiver.route(f"/{contract}", chosen)
    return created.endpoint.id, secret


def test_every_contract_delivers_what_its_documentation_verifies_without_internal_fields(
    stack: Stack, receiver: Receiver
) -> None:
    admin.create_tenant(stack.hookline.sessions, "acme")
    secrets = {c: endpoint_for(stack, receiver, c, events=["session.*"])[1] for c in CONTRACTS}
    stack.worker()
    published = stack.hookline.publish("acme", "session.completed", SESSION)

    wait_until(lambda: all(receiver.for_path(f"/{c}") for c in CONTRACTS), what="one delivery each")
    for contract in CONTRACTS:
        [request] = receiver.for_path(f"/{contract}")
        assert request.verified is True, contract
        assert b"Internal Provider" not in request.body
        assert b"ops-7" not in request.body and b"raw-attestation" not in request.body
        if contract != "cr3dentials":  # its body names the status, not the event type
            assert "session.completed" in request.body.decode() + json.dumps(request.headers)
    sw = receiver.for_path("/standard-webhooks")[0]
    assert standard_webhooks_ok(secrets["standard-webhooks"], sw.headers, sw.body)
    assert sw.headers["webhook-id"] == published.event_id
    cr3 = json.loads(receiver.for_path("/cr3dentials")[0].body)
    assert cr3["sessionId"] == SESSION["sessionId"]
    assert cr3["status"] == "COMPLETED"
    assert cr3["metadata"] == {"channel": "api"}
    wallet = json.loads(receiver.for_path("/wallet-crew")[0].body)
    assert wallet["__id"] == published.event_id


def test_a_retry_keeps_the_event_and_delivery_ids_and_signs_again(stack: Stack,
                                                                   receiver: Receiver) -> None:
    admin.create_tenant(stack.hookline.sessions, "acme")
    _, secret = endpoint_for(stack, receiver, "crewship", events=["run.*"],
                             route=Route(statuses=[503, 200]))
    stack.worker()
    stack.hookline.publish("acme", "run.failed", {"run_id": "run_1", "error": "OOM"})

    wait_until(lambda: len(receiver.for_path("/crewship")) == 2, what="503 then 200")
    first, second = receiver.for_path("/crewship")
    assert first.headers["X-Crewship-Delivery"] == second.headers["X-Crewship-Delivery"]
    assert first.body == second.body
    assert int(second.headers["X-Crewship-Timestamp"]) >= int(first.headers["X-Crewship-Timestamp"])
    assert crewship_signature_ok(secret, second.headers, second.body)


def test_after_a_rotation_both_secrets_verify_until_the_grace_period_ends(
    stack: Stack, receiver: Receiver
) -> None:
    admin.create_tenant(stack.hookline.sessions, "acme")
    keys: dict[str, tuple[str, str]] = {}
    for contract in ("crewpass", "standard-webhooks", "cr3dentials"):
        endpoint_id, old = endpoint_for(stack, receiver, contract, events=["*"])
        new = admin.rotate_secret(stack.hookline.sessions, endpoint_id,
                                  grace=timedelta(hours=1)).secret
        keys[contract] = (endpoint_id, old)
        keys[contract + ":new"] = (endpoint_id, new)
    stack.worker()
    stack.hookline.publish("acme", "session.completed", {"sessionId": "s-rotating"})
    wait_until(lambda: all(receiver.for_path(f"/{c}") for c in ("crewpass", "standard-webhooks",
                                                                 "cr3dentials")),
               what="one delivery each during the grace period")

    def during(contract: str) -> tuple[Mapping[str, str], bytes]:
        request = receiver.for_path(f"/{contract}")[-1]
        return request.headers, request.body

    headers, body = during("crewpass")
    assert crewpass_signature_ok(keys["crewpass"][1], headers, body)
    assert crewpass_signature_ok(keys["crewpass:new"][1], headers, body,
                                 header="X-CrewPass-Signature-Next")
    headers, body = during("standard-webhooks")
    assert standard_webhooks_ok(keys["standard-webhooks"][1], headers, body)
    assert standard_webhooks_ok(keys["standard-webhooks:new"][1], headers, body)
    headers, body = during("cr3dentials")
    assert cr3dentials_auth_ok(keys["cr3dentials"][1], headers)
    assert cr3dentials_auth_ok(keys["cr3dentials:new"][1], headers, header="X-API-Key-Next")

    # the grace period ends (a zero-grace rotation to a known secret): only the new one verifies
    sw_id = keys["standard-webhooks"][0]
    final = admin.rotate_secret(stack.hookline.sessions, sw_id, grace=timedelta(0)).secret
    stack.hookline.publish("acme", "session.completed", {"sessionId": "s-after"})
    wait_until(lambda: len(receiver.for_path("/standard-webhooks")) == 2, what="second delivery")
    headers, body = during("standard-webhooks")
    assert standard_webhooks_ok(final, headers, body)
    assert not standard_webhooks_ok(keys["standard-webhooks:new"][1], headers, body)
    assert not standard_webhooks_ok(keys["standard-webhooks"][1], headers, body)
