"""Every wire contract: golden vectors, independent verification, identity, options, secrets."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.contracts import (
    AttemptContext,
    EventView,
    RenderedRequest,
    SigningKeys,
    contract_names,
    get_contract,
    validate_static_headers,
    with_static_headers,
)
from app.contracts.cr3dentials import status_for
from app.errors import InvalidEndpointConfig
from app.hygiene import public_payload
from tests.support import (
    cr3dentials_auth_ok,
    crewpass_signature_ok,
    crewship_signature_ok,
    standard_webhooks_ok,
    wallet_crew_signature_ok,
)

VECTORS_FILE = Path(__file__).resolve().parents[2] / "docs" / "contracts" / "vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
CONTRACTS = ["crewpass", "crewship", "cr3dentials", "wallet-crew", "standard-webhooks"]
#: The header carrying the signature (or credential) each contract documents.
SIGNED_HEADER = {"crewpass": "X-CrewPass-Signature", "crewship": "X-Crewship-Signature",
                 "wallet-crew": "x-neostore-signature", "cr3dentials": "X-API-Key"}


def render_vector(vector: dict[str, Any]) -> RenderedRequest:
    """Render a vector's inputs with Hookline's code, exactly as a delivery would."""
    spec = vector["event"]
    occurred = datetime.strptime(spec["occurred_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    view = EventView(spec["id"], spec["type"], spec["tenant_id"], occurred,
                     public_payload(spec["data"], vector["internal_fields"]))
    keys = SigningKeys(vector["secret"], vector["previous_secret"])
    context = AttemptContext(vector["delivery_id"], keys, vector["timestamp"],
                             vector["endpoint"]["auth_header"])
    rendered = get_contract(vector["contract"]).render(view, context)
    return with_static_headers(rendered, vector["endpoint"]["headers"])


def event(data: dict[str, Any] | None = None, type_: str = "run.succeeded") -> EventView:
    return EventView("evt_1", type_, "ten_1", datetime(2026, 6, 8, 10, 0, tzinfo=UTC),
                     data if data is not None else {"run_id": "run_1"})


def render(contract: str, *, keys: SigningKeys | None = None, timestamp: int | None = None,
           delivery_id: str = "dlv_1", data: dict[str, Any] | None = None,
           type_: str = "run.succeeded") -> RenderedRequest:
    chosen = get_contract(contract)
    secret = keys or SigningKeys(chosen.generate_secret())
    context = AttemptContext(delivery_id, secret, timestamp or int(time.time()))
    return chosen.render(event(data, type_), context)


def ids(vector: dict[str, Any]) -> str:
    return str(vector["name"])


class TestGoldenVectors:
    """docs/contracts/vectors.json pins every contract's bytes; a changed byte fails here."""

    def test_there_are_single_secret_and_rotating_vectors_for_every_contract(self) -> None:
        names = {v["name"] for v in VECTORS}
        for contract in CONTRACTS:
            assert f"{contract}/single-secret" in names
            assert f"{contract}/rotating" in names
        assert sorted(contract_names()) == sorted(CONTRACTS)

    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_rendering_the_vector_gives_its_exact_body(self, vector: dict[str, Any]) -> None:
        assert render_vector(vector).body == vector["body"].encode("utf-8")

    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_rendering_the_vector_gives_its_exact_headers_in_order(self, vector: dict[str, Any]) -> None:
        assert list(render_vector(vector).headers.items()) == list(vector["headers"].items())

    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_no_internal_field_survives_into_any_vector(self, vector: dict[str, Any]) -> None:
        assert "never sent" not in vector["body"]
        assert not re.search(r'"_[^_]', vector["body"]), "a _-prefixed key was sent"


class TestIndependentVerification:
    """Each vector passes the verification its product documents, written in the tests."""

    CHECKS = {"crewpass": crewpass_signature_ok, "crewship": crewship_signature_ok}

    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["contract"] in ("crewpass", "crewship")],
                             ids=ids)
    def test_timestamped_hmac_vectors_verify_with_the_secret_behind_each_header(
        self, vector: dict[str, Any]
    ) -> None:
        check = self.CHECKS[vector["contract"]]
        body, headers, now = vector["body"].encode(), vector["headers"], vector["timestamp"]
        header = SIGNED_HEADER[vector["contract"]]
        documented_secret = vector["previous_secret"] or vector["secret"]
        assert check(documented_secret, headers, body, now=now, header=header)
        assert not check("not-the-secret", headers, body, now=now, header=header)
        if vector["previous_secret"]:
            assert check(vector["secret"], headers, body, now=now, header=header + "-Next")
            assert not check(vector["secret"], headers, body, now=now, header=header)

    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["contract"] == "wallet-crew"], ids=ids)
    def test_wallet_crew_vectors_are_a_hex_hmac_of_the_raw_body(self, vector: dict[str, Any]) -> None:
        body, headers = vector["body"].encode(), vector["headers"]
        assert wallet_crew_signature_ok(vector["previous_secret"] or vector["secret"], headers, body)
        if vector["previous_secret"]:
            assert wallet_crew_signature_ok(vector["secret"], headers, body,
                                            header="x-neostore-signature-next")

    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["contract"] == "cr3dentials"], ids=ids)
    def test_cr3dentials_vectors_carry_the_configured_credential(self, vector: dict[str, Any]) -> None:
        headers = vector["headers"]
        assert cr3dentials_auth_ok(vector["previous_secret"] or vector["secret"], headers)
        if vector["previous_secret"]:
            assert cr3dentials_auth_ok(vector["secret"], headers, header="X-API-Key-Next")

    def test_the_standard_webhooks_package_verifies_a_fresh_render(self) -> None:
        contract = get_contract("standard-webhooks")
        secret = contract.generate_secret()
        rendered = render("standard-webhooks", keys=SigningKeys(secret))
        assert standard_webhooks_ok(secret, rendered.headers, rendered.body)
        assert not standard_webhooks_ok(contract.generate_secret(), rendered.headers, rendered.body)

    def test_during_a_rotation_the_package_verifies_with_either_secret(self) -> None:
        contract = get_contract("standard-webhooks")
        new, old = contract.generate_secret(), contract.generate_secret()
        rendered = render("standard-webhooks", keys=SigningKeys(new, old))
        assert len(rendered.headers["webhook-signature"].split(" ")) == 2
        assert standard_webhooks_ok(new, rendered.headers, rendered.body)
        assert standard_webhooks_ok(old, rendered.headers, rendered.body)

    def test_the_standard_webhooks_vector_uses_the_specifications_example_secret(self) -> None:
        vector = next(v for v in VECTORS if v["name"] == "standard-webhooks/single-secret")
        assert vector["secret"] == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class TestIdentityAcrossAttempts:
    """Event id never changes, the delivery id is per delivery, time and signature per attempt."""

    @pytest.mark.parametrize("contract", ["crewpass", "crewship", "standard-webhooks"])
    def test_a_later_attempt_has_the_same_body_and_a_fresh_timestamp_and_signature(
        self, contract: str
    ) -> None:
        keys = SigningKeys(get_contract(contract).generate_secret())
        first = render(contract, keys=keys, timestamp=1_800_000_000)
        second = render(contract, keys=keys, timestamp=1_800_000_060)
        assert first.body == second.body
        changed = {k for k in first.headers if first.headers[k] != second.headers[k]}
        assert len(changed) == 2  # the timestamp and the signature, nothing else

    @pytest.mark.parametrize("contract", CONTRACTS)
    def test_the_event_id_is_in_every_contract_that_has_one(self, contract: str) -> None:
        rendered = render(contract, type_="session.completed", data={"sessionId": "s1"})
        text = rendered.body.decode() + json.dumps(rendered.headers)
        if contract == "cr3dentials":  # its idempotency key is the session id
            assert json.loads(rendered.body)["sessionId"] == "s1"
        else:
            assert "evt_1" in text

    def test_crewship_sends_the_delivery_id_for_receivers_to_dedupe_on(self) -> None:
        assert render("crewship", delivery_id="dlv_A").headers["X-Crewship-Delivery"] == "dlv_A"
        assert render("crewship", delivery_id="dlv_B").headers["X-Crewship-Delivery"] == "dlv_B"


class TestContractSpecifics:
    def test_cr3dentials_sends_every_documented_key_in_order_and_nothing_else(self) -> None:
        rendered = render("cr3dentials", type_="session.error",
                          data={"sessionId": "s1", "platformId": 2, "extra": "dropped"})
        body = json.loads(rendered.body)
        assert list(body) == ["sessionId", "status", "platformId", "externalReferenceId",
                              "extractedData", "proofHash", "completedAt", "metadata"]
        assert body["status"] == "ERROR"
        assert body["externalReferenceId"] is None
        assert body["completedAt"] == "2026-06-08T10:00:00.000Z"

    @pytest.mark.parametrize(("event_type", "status"), [
        ("session.completed", "COMPLETED"), ("session.partial_complete", "PARTIAL_COMPLETE"),
        ("session.error", "ERROR"), ("session.cancelled", "CANCELLED"),
        ("session.terminated", "TERMINATED"),
    ])
    def test_cr3dentials_status_follows_the_terminal_event_type(self, event_type: str,
                                                                status: str) -> None:
        assert status_for(event_type) == status

    def test_cr3dentials_uses_the_configured_auth_header(self) -> None:
        contract = get_contract("cr3dentials")
        rendered = contract.render(event({"sessionId": "s"}, "session.completed"),
                                   AttemptContext("dlv_1", SigningKeys("key-" + "k" * 20), 1,
                                                  auth_header="X-Partner-Token"))
        assert rendered.headers["X-Partner-Token"] == "key-" + "k" * 20
        assert "X-API-Key" not in rendered.headers

    def test_wallet_crew_metadata_comes_first_and_data_cannot_overwrite_it(self) -> None:
        rendered = render("wallet-crew", data={"__id": "forged", "customerId": "c1"},
                          type_="Customer:Upserted")
        body = json.loads(rendered.body)
        assert list(body)[:4] == ["__id", "__eventName", "__tenantId", "__createdAt"]
        assert body["__id"] == "evt_1"
        assert body["customerId"] == "c1"
        assert rendered.headers["x-neostore-eventname"] == "Customer:Upserted"
        assert rendered.headers["x-neostore-tenantid"] == "ten_1"


class TestSecrets:
    @pytest.mark.parametrize(("contract", "pattern"), [
        ("crewpass", r"cpsk_[0-9a-f]{64}"),
        ("crewship", r"cssk_[0-9a-f]{64}"),
        ("wallet-crew", r"wcsk_[A-Za-z0-9_-]{43}"),
        ("cr3dentials", r"c3k_[A-Za-z0-9_-]{43}"),
        ("standard-webhooks", r"whsec_[A-Za-z0-9+/]{43}="),
    ])
    def test_generated_secrets_have_the_contracts_format_and_differ(self, contract: str,
                                                                    pattern: str) -> None:
        chosen = get_contract(contract)
        first, second = chosen.generate_secret(), chosen.generate_secret()
        assert re.fullmatch(pattern, first)
        assert first != second
        chosen.validate_secret(first)

    def test_a_standard_webhooks_secret_holds_32_random_bytes(self) -> None:
        secret = get_contract("standard-webhooks").generate_secret()
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32

    @pytest.mark.parametrize(("contract", "secret"), [
        ("crewpass", "short"),
        ("crewship", "has a space in it!!"),
        ("wallet-crew", "line\nbreak-secret-value"),
        ("standard-webhooks", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("standard-webhooks", "whsec_not*base64*at*all"),
        ("standard-webhooks", "whsec_c2hvcnQ="),
    ])
    def test_a_supplied_secret_the_contract_cannot_use_is_refused(self, contract: str,
                                                                  secret: str) -> None:
        with pytest.raises(InvalidEndpointConfig):
            get_contract(contract).validate_secret(secret)


class TestStaticHeaders:
    def test_static_headers_are_added_after_the_contracts_own(self) -> None:
        rendered = with_static_headers(render("crewpass"), {"X-Route": "eu"})
        assert list(rendered.headers)[-1] == "X-Route"

    @pytest.mark.parametrize("name", ["X-CrewPass-Signature", "x-crewpass-signature-next",
                                      "Content-Type", "Host", "User-Agent", "Content-Length"])
    def test_a_header_hookline_sets_cannot_be_configured(self, name: str) -> None:
        reserved = get_contract("crewpass").reserved_headers
        with pytest.raises(InvalidEndpointConfig, match="set by Hookline"):
            validate_static_headers({name: "x"}, reserved)

    @pytest.mark.parametrize(("headers", "message"), [
        ({"Bad Name": "x"}, "invalid header name"),
        ({"X-A": "line\r\nInjected: 1"}, "line breaks"),
        ({"X-A": " padded"}, "whitespace"),
        ({"X-A": "a", "x-a": "b"}, "given twice"),
        ({f"X-H{i}": "v" for i in range(21)}, "at most 20"),
        ({"X-A": "v" * 1025}, "longer than 1024"),
    ])
    def test_malformed_static_headers_are_refused_with_the_reason(
        self, headers: dict[str, str], message: str
    ) -> None:
        with pytest.raises(InvalidEndpointConfig, match=message):
            validate_static_headers(headers, frozenset())

    @pytest.mark.parametrize(("value", "refusal"), [
        ("plain", None),
        ("caf\u00e9 \u00bd", None),
        ("x\u00a0y\u00ff", None),
        ("\u20ac10", "value has '\\u20ac', which is not Latin-1"),
        ("a\ud800b", "value has '\\ud800', which is not Latin-1"),
        ("a\tb", "value has the control character '\\t'"),
        ("a\x01b", "value has the control character '\\x01'"),
        ("a\x7fb", "value has the control character '\\x7f'"),
        ("a\x85b", "value has the control character '\\x85'"),
        ("a\x00b", "value has the control character '\\x00'"),
        ("a\r\nInjected: 1", "value has the control character '\\r'; line breaks"),
    ], ids=["ascii", "latin-1", "latin-1-no-break-space", "euro", "lone-surrogate", "tab", "soh",
            "del", "c1-next-line", "nul", "crlf"])
    def test_a_value_is_kept_only_if_http_can_carry_it_as_latin_1_without_controls(
        self, value: str, refusal: str | None
    ) -> None:
        if refusal is None:
            assert validate_static_headers({"X-A": value}, frozenset()) == {"X-A": value}
            return
        with pytest.raises(InvalidEndpointConfig) as refused:
            validate_static_headers({"X-A": value}, frozenset())
        assert str(refused.value).startswith(f"header 'X-A': {refusal}")

    @pytest.mark.parametrize("name", ["X-A\n", "X-A\r\n", "X A", "X-\u20ac", "X:A", "", "X" * 101])
    def test_a_header_name_that_is_not_an_http_token_is_refused(self, name: str) -> None:
        with pytest.raises(InvalidEndpointConfig, match="invalid header name"):
            validate_static_headers({name: "x"}, frozenset())

    @pytest.mark.parametrize("contract", ["crewpass", "cr3dentials", "wallet-crew"])
    def test_a_supplied_secret_with_a_final_newline_is_refused(self, contract: str) -> None:
        with pytest.raises(InvalidEndpointConfig, match="visible ASCII"):
            get_contract(contract).validate_secret("s" * 20 + "\n")

    def test_unknown_contract_names_are_refused_with_the_known_ones(self) -> None:
        with pytest.raises(InvalidEndpointConfig, match=r"unknown contract 'svix'.*crewpass"):
            get_contract("svix")
