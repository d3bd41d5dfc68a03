"""Endpoints speak their contract: options, secret rotation with a grace period, hygiene, keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app import admin
from app.contracts import get_contract
from app.engine import DeliveryEngine
from app.errors import InvalidEndpointConfig, InvalidPayload, UnknownEndpoint
from app.rendering import render_attempt, signing_keys
from app.verify import BadSignature, verify
from tests.support import body_json, independently_verified
from tests.unit.conftest import T0, FixedClock, Harness, ScriptedTransport, http

UNIX_NOW = 1780912800
CONTRACTS = ["crewpass", "crewship", "cr3dentials", "wallet-crew", "standard-webhooks"]


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(retry_jitter=0)


def send_one(h: Harness, endpoint_id: str, delivery_id: str, *, at: Any = T0,
             unix_time: Callable[[], float] = lambda: float(UNIX_NOW)) -> ScriptedTransport:
    transport = ScriptedTransport(http(200))
    service = DeliveryEngine(h.settings, h.engine, transport, clock=FixedClock(at),
                              unix_time=unix_time)
    outcome = service.run([delivery_id])
    assert outcome.succeeded == [delivery_id]
    return transport


def rendered_now(h: Harness, endpoint_id: str, delivery_id: str, at: Any) -> Any:
    delivery = h.delivery(delivery_id)
    return render_attempt(h.endpoint_row(endpoint_id), h.event(delivery.event_id), delivery_id,
                          h.catalogue, now=at, timestamp=UNIX_NOW)


class TestEndpointOptions:
    @pytest.mark.parametrize("contract", CONTRACTS)
    def test_each_contract_delivers_a_request_its_documentation_accepts(
        self, h: Harness, contract: str
    ) -> None:
        tenant = h.tenant()
        created = admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                                     url="https://receiver.example/x", events=["*"],
                                     contract=contract)
        [delivery_id] = h.publish(tenant, "session.completed", {"sessionId": "s-1"}).delivery_ids
        # signed at the real time: the independent verifiers check it against the real clock
        sent = send_one(h, created.endpoint.id, delivery_id, unix_time=time.time).calls[0]
        assert independently_verified(contract, created.secret, sent.headers, sent.body)
        other = get_contract(contract).generate_secret()
        assert not independently_verified(contract, other, sent.headers, sent.body)
        verify(contract, created.secret, sent.headers, sent.body)

    def test_static_headers_and_an_auth_header_are_stored_and_sent(self, h: Harness) -> None:
        tenant = h.tenant()
        created = admin.add_endpoint(
            h.sessions, h.catalogue, tenant=tenant.id, url="https://receiver.example/x",
            events=["session.*"], contract="cr3dentials", auth_header="X-Partner-Key",
            headers={"X-Route": "eu-1"}, secret="partner-supplied-key-0001")
        [delivery_id] = h.publish(tenant, "session.completed", {"sessionId": "s-2"}).delivery_ids
        sent = send_one(h, created.endpoint.id, delivery_id).calls[0]
        assert sent.headers["X-Partner-Key"] == "partner-supplied-key-0001"
        assert sent.headers["X-Route"] == "eu-1"
        assert "X-API-Key" not in sent.headers

    def test_an_auth_header_is_refused_for_a_signing_contract(self, h: Harness) -> None:
        tenant = h.tenant()
        with pytest.raises(InvalidEndpointConfig, match="cr3dentials contract only"):
            admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                               url="https://receiver.example/x", events=["*"],
                               contract="crewpass", auth_header="X-API-Key")

    def test_a_static_header_may_not_shadow_the_credential_header(self, h: Harness) -> None:
        tenant = h.tenant()
        with pytest.raises(InvalidEndpointConfig, match="set by Hookline"):
            admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                               url="https://receiver.example/x", events=["*"],
                               contract="cr3dentials", headers={"x-api-key": "other"})

    @pytest.mark.parametrize("auth_header", ["X-Key\n", "X Key", "X-\u20ac", "X-Key\x00"])
    def test_an_auth_header_that_is_not_an_http_token_is_refused_and_nothing_is_stored(
        self, h: Harness, auth_header: str
    ) -> None:
        tenant = h.tenant()
        with pytest.raises(InvalidEndpointConfig, match="auth header: invalid header name"):
            admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                               url="https://receiver.example/x", events=["*"],
                               contract="cr3dentials", auth_header=auth_header)
        assert admin.list_endpoints(h.sessions) == []

    @pytest.mark.parametrize("value", ["\u20ac10", "a\x01b", "a\tb"])
    def test_a_static_header_value_http_cannot_carry_is_refused_on_create_and_on_update(
        self, h: Harness, value: str
    ) -> None:
        tenant = h.tenant()
        with pytest.raises(InvalidEndpointConfig, match="header 'X-Route': value has"):
            admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                               url="https://receiver.example/x", events=["*"],
                               headers={"X-Route": value})
        assert admin.list_endpoints(h.sessions) == []
        created = admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                                     url="https://receiver.example/x", events=["*"],
                                     headers={"X-Route": "eu-1"})
        with pytest.raises(InvalidEndpointConfig, match="header 'X-Route': value has"):
            admin.update_endpoint(h.sessions, h.catalogue, created.endpoint.id,
                                  {"headers": {"X-Route": value}})
        assert h.endpoint_row(created.endpoint.id).headers == {"X-Route": "eu-1"}

    def test_a_supplied_secret_in_the_wrong_format_is_refused_and_nothing_is_stored(
        self, h: Harness
    ) -> None:
        tenant = h.tenant()
        with pytest.raises(InvalidEndpointConfig, match="whsec_"):
            admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                               url="https://receiver.example/x", events=["*"],
                               contract="standard-webhooks", secret="plain-secret-123456")
        assert admin.list_endpoints(h.sessions) == []


class TestRotation:
    def _endpoint(self, h: Harness, contract: str) -> tuple[str, str, str]:
        tenant = h.tenant()
        created = admin.add_endpoint(h.sessions, h.catalogue, tenant=tenant.id,
                                     url="https://receiver.example/x", events=["*"],
                                     contract=contract)
        [delivery_id] = h.publish(tenant, "session.completed", {"sessionId": "s-9"}).delivery_ids
        return created.endpoint.id, created.secret, delivery_id

    @pytest.mark.parametrize("contract", CONTRACTS)
    def test_during_the_grace_period_both_secrets_verify_and_after_it_only_the_new_one(
        self, h: Harness, contract: str
    ) -> None:
        endpoint_id, old, delivery_id = self._endpoint(h, contract)
        rotated = admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(hours=24), now=T0)
        assert rotated.previous_valid_until == T0 + timedelta(hours=24)
        new = rotated.secret
        assert new != old

        during = rendered_now(h, endpoint_id, delivery_id, T0 + timedelta(hours=23))
        verify(contract, old, during.headers, during.body, now=UNIX_NOW)
        verify(contract, new, during.headers, during.body, now=UNIX_NOW)

        after = rendered_now(h, endpoint_id, delivery_id, T0 + timedelta(hours=24, seconds=1))
        verify(contract, new, after.headers, after.body, now=UNIX_NOW)
        with pytest.raises(BadSignature):
            verify(contract, old, after.headers, after.body, now=UNIX_NOW)

    def test_during_the_grace_period_the_documented_header_keeps_the_old_secret(
        self, h: Harness
    ) -> None:
        endpoint_id, old, delivery_id = self._endpoint(h, "crewpass")
        admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(hours=1), now=T0)
        during = rendered_now(h, endpoint_id, delivery_id, T0)
        # a receiver that has not yet installed the new secret keeps verifying
        assert independently_verified_at("crewpass", old, during)
        assert "X-CrewPass-Signature-Next" in during.headers
        after = rendered_now(h, endpoint_id, delivery_id, T0 + timedelta(hours=2))
        assert "X-CrewPass-Signature-Next" not in after.headers

    def test_a_zero_grace_drops_the_old_secret_at_once(self, h: Harness) -> None:
        endpoint_id, old, delivery_id = self._endpoint(h, "standard-webhooks")
        rotated = admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(0), now=T0)
        assert rotated.previous_valid_until is None
        now = rendered_now(h, endpoint_id, delivery_id, T0)
        assert len(now.headers["webhook-signature"].split()) == 1
        with pytest.raises(BadSignature):
            verify("standard-webhooks", old, now.headers, now.body, now=UNIX_NOW)

    def test_rotating_twice_keeps_only_the_secret_being_replaced(self, h: Harness) -> None:
        endpoint_id, first, _ = self._endpoint(h, "crewship")
        second = admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(hours=1), now=T0).secret
        third = admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(hours=1), now=T0).secret
        keys = signing_keys(h.endpoint_row(endpoint_id), T0)
        assert (keys.current, keys.previous) == (third, second)
        assert first not in (keys.current, keys.previous)

    def test_a_grace_beyond_thirty_days_is_refused(self, h: Harness) -> None:
        endpoint_id, _, _ = self._endpoint(h, "crewpass")
        with pytest.raises(InvalidEndpointConfig, match="between 0 and 30 days"):
            admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(days=31))

    def test_another_tenants_endpoint_cannot_be_rotated(self, h: Harness) -> None:
        endpoint_id, _, _ = self._endpoint(h, "crewpass")
        stranger = h.tenant()
        with pytest.raises(UnknownEndpoint):
            admin.rotate_secret(h.sessions, endpoint_id, grace=timedelta(0), tenant=stranger.id)


def independently_verified_at(contract: str, secret: str, rendered: Any) -> bool:
    from tests.support import crewpass_signature_ok

    assert contract == "crewpass"
    return crewpass_signature_ok(secret, rendered.headers, rendered.body, now=UNIX_NOW)


class TestHygieneInDelivery:
    @pytest.mark.parametrize("contract", CONTRACTS)
    def test_internal_fields_are_stored_but_never_sent(self, h: Harness, contract: str) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant, contract=contract)
        data = {"sessionId": "s-3", "metadata": {"channel": "web", "_operator": "bob"},
                "_provider": "Acme Checks", "attestation": "raw"}
        [delivery_id] = h.publish(tenant, "session.completed", data).delivery_ids
        assert h.event(h.delivery(delivery_id).event_id).payload == data
        sent = send_one(h, endpoint.id, delivery_id).calls[0]
        assert b"Acme Checks" not in sent.body
        assert b"_operator" not in sent.body
        assert b'"raw"' not in sent.body
        assert body_json(sent.body) is not None


class TestImpliedIdempotency:
    def test_a_cr3dentials_session_is_published_once_per_session_id(self, h: Harness) -> None:
        tenant = h.tenant()
        h.endpoint(tenant, contract="cr3dentials")
        first = h.publish(tenant, "session.completed", {"sessionId": "s-1"})
        again = h.publish(tenant, "session.completed", {"sessionId": "s-1", "status": "COMPLETED"})
        assert again.event_id == first.event_id
        assert again.created is False
        other = h.publish(tenant, "session.completed", {"sessionId": "s-2"})
        assert other.event_id != first.event_id

    def test_a_session_event_without_a_session_id_is_refused(self, h: Harness) -> None:
        tenant = h.tenant()
        with pytest.raises(InvalidPayload, match=r"data\.sessionId is required"):
            h.publish(tenant, "session.error", {"status": "ERROR"})
