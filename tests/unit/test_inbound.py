"""Incoming webhooks: hashed tokens, creation rules, resolution, revocation and receiving calls."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from app import inbound
from app.db import alembic_config, transaction
from app.errors import (
    InputError,
    InvalidEventType,
    InvalidPayload,
    PayloadTooLarge,
    UnknownEventType,
    UnknownIncomingWebhook,
    UnknownTenant,
)
from app.models import Base, Delivery, Event, IncomingWebhook, Tenant
from tests.unit.conftest import Harness


def create(h: Harness, tenant: Tenant, event_type: str = "run.succeeded",
           **options: Any) -> inbound.NewIncomingWebhook:
    options.setdefault("name", "ci runs")
    return inbound.create(h.sessions, h.catalogue, tenant=tenant.id, event_type=event_type, **options)


def receive(h: Harness, token: str, body: bytes = b'{"run_id": "r1"}', **options: Any) -> inbound.Received:
    return inbound.receive(h.sessions, h.dispatcher, h.catalogue, token, body,
                           max_payload_bytes=h.settings.max_payload_bytes, **options)


def stored(h: Harness, hook_id: str) -> IncomingWebhook:
    with transaction(h.sessions) as session:
        row = session.get(IncomingWebhook, hook_id)
        assert row is not None
        return row


class TestTokens:
    """A token is hlin_ and 256 random bits; only its SHA-256 is kept."""

    def test_a_token_is_the_prefix_and_43_url_safe_characters(self) -> None:
        token = inbound.generate_token()
        assert token.startswith("hlin_") and len(token) == 48
        assert inbound.looks_like_token(token)

    def test_tokens_do_not_repeat(self) -> None:
        assert len({inbound.generate_token() for _ in range(1000)}) == 1000

    @pytest.mark.parametrize("value", ["", "hlin_", "hlin_short", "hl_" + "a" * 43, "hlin_" + "a" * 44,
                                       "hlin_" + "a" * 42 + "\x00", "hlin_" + "a" * 42 + "/",
                                       "HLIN_" + "a" * 43, "hlin_" + "a" * 43 + "\n"])
    def test_anything_else_is_not_a_token(self, value: str) -> None:
        assert not inbound.looks_like_token(value)

    def test_the_url_is_the_public_url_then_hooks_then_the_token(self) -> None:
        assert inbound.hook_url("https://hooks.example/", "hlin_x") == "https://hooks.example/hooks/hlin_x"
        assert inbound.hook_url("https://x.example/base", "hlin_y") == "https://x.example/base/hooks/hlin_y"

    def test_the_row_holds_the_tokens_digest_and_prefix_never_the_token(self, harness: Harness) -> None:
        created = create(harness, harness.tenant())
        row = stored(harness, created.hook.id)
        assert row.token_hash == hashlib.sha256(created.token.encode()).hexdigest()
        assert row.token_prefix == created.token[:12]
        columns = [getattr(row, c.key) for c in inspect(IncomingWebhook).columns]
        assert not any(isinstance(value, str) and created.token in value for value in columns)


class TestCreation:
    """A hook publishes one catalogued event type in one environment; bad input writes nothing."""

    def test_a_hook_is_stored_with_its_tenant_type_and_environment(self, harness: Harness) -> None:
        acme = harness.tenant("acme")
        created = inbound.create(harness.sessions, harness.catalogue, tenant="acme", name=" ci ",
                                 event_type="run.failed", environment="staging")
        row = stored(harness, created.hook.id)
        assert row.id.startswith("inh_")
        assert (row.tenant_id, row.name, row.event_type, row.environment) == (
            acme.id, "ci", "run.failed", "staging")
        assert row.revoked_at is None and row.last_used_at is None

    @pytest.mark.parametrize(("options", "error"), [
        ({"event_type": "run.teleported"}, UnknownEventType),
        ({"event_type": "not a type"}, InvalidEventType),
        ({"environment": "qa"}, InputError),
        ({"name": "  "}, InputError),
        ({"name": "x" * 201}, InputError),
        ({"name": "nul\x00"}, InputError),
    ])
    def test_bad_input_is_refused_and_nothing_is_written(
        self, harness: Harness, options: dict[str, Any], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            create(harness, harness.tenant(), **options)
        assert harness.count(IncomingWebhook) == 0

    @pytest.mark.parametrize(("name", "shown"), [("CI \ud800", "lone surrogate '\\ud800'"),
                                                 ("CI\x00", "control character '\\x00'")],
                             ids=["lone-surrogate", "nul"])
    def test_a_name_the_database_cannot_store_is_refused_saying_why(
        self, harness: Harness, name: str, shown: str
    ) -> None:
        with pytest.raises(InputError, match="^" + re.escape(f"name has the {shown}")):
            create(harness, harness.tenant(), name=name)
        assert harness.count(IncomingWebhook) == 0

    def test_an_unknown_tenant_is_refused(self, harness: Harness) -> None:
        with pytest.raises(UnknownTenant):
            inbound.create(harness.sessions, harness.catalogue, tenant="nobody", name="n",
                           event_type="run.succeeded")


class TestResolution:
    """A live token opens its hook; unknown, malformed and revoked tokens are all the same."""

    def test_a_live_token_opens_its_hook(self, harness: Harness) -> None:
        created = create(harness, harness.tenant())
        assert inbound.resolve(harness.sessions, created.token).id == created.hook.id

    def test_unknown_malformed_and_revoked_tokens_fail_alike_without_repeating_the_token(
        self, harness: Harness
    ) -> None:
        created = create(harness, harness.tenant())
        inbound.revoke(harness.sessions, created.hook.id)
        messages = set()
        for token in (created.token, inbound.generate_token(), "garbage\x00"):
            with pytest.raises(UnknownIncomingWebhook) as caught:
                inbound.resolve(harness.sessions, token)
            messages.add(str(caught.value))
        assert messages == {"unknown incoming webhook"}


class TestRevocation:
    """Revoking is per tenant, reports a repeat, and hides the hook."""

    def test_another_tenants_hook_is_unknown_and_stays_live(self, harness: Harness) -> None:
        created = create(harness, harness.tenant("acme"))
        other = harness.tenant("globex")
        with pytest.raises(UnknownIncomingWebhook):
            inbound.revoke(harness.sessions, created.hook.id, tenant=other.id)
        with pytest.raises(UnknownIncomingWebhook):
            inbound.get(harness.sessions, created.hook.id, tenant=other.id)
        assert inbound.resolve(harness.sessions, created.token).id == created.hook.id

    def test_a_second_revoke_has_nothing_to_do(self, harness: Harness) -> None:
        created = create(harness, harness.tenant())
        assert inbound.revoke(harness.sessions, created.hook.id) is True
        assert inbound.revoke(harness.sessions, created.hook.id) is False
        assert stored(harness, created.hook.id).revoked_at is not None

    def test_an_unknown_id_is_unknown(self, harness: Harness) -> None:
        with pytest.raises(UnknownIncomingWebhook):
            inbound.revoke(harness.sessions, "inh_nothing")

    def test_lists_show_live_hooks_of_the_tenant_only(self, harness: Harness) -> None:
        acme, globex = harness.tenant("acme"), harness.tenant("globex")
        kept, gone = create(harness, acme), create(harness, acme)
        theirs = create(harness, globex)
        inbound.revoke(harness.sessions, gone.hook.id)
        assert [h.id for h in inbound.list_hooks(harness.sessions, acme.id)] == [kept.hook.id]
        assert [h.id for h in inbound.list_hooks(harness.sessions)] == sorted([kept.hook.id, theirs.hook.id])

    def test_lists_page_in_id_order_after_a_cursor(self, harness: Harness) -> None:
        acme = harness.tenant()
        ids = sorted(create(harness, acme).hook.id for _ in range(3))
        assert [h.id for h in inbound.list_hooks(harness.sessions, acme.id, limit=2)] == ids[:2]
        assert [h.id for h in inbound.list_hooks(harness.sessions, acme.id, after=ids[0])] == ids[1:]


class TestBodies:
    """A call's body must be a JSON object; the reason is said plainly otherwise."""

    def test_a_json_object_is_the_payload(self) -> None:
        assert inbound.parse_body(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}

    @pytest.mark.parametrize(("raw", "reason"), [
        (b"[1, 2]", "not an array"), (b'"text"', "not a string"), (b"3", "not a number"),
        (b"null", "not null"), (b"true", "not a boolean"),
        (b"", "not valid JSON"), (b"{not json", "not valid JSON"), (b"\xff\xfe{", "not valid JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"[" * 100_000, "nested deeper"),
    ])
    def test_anything_else_is_invalid_saying_why(self, raw: bytes, reason: str) -> None:
        with pytest.raises(InvalidPayload, match=reason):
            inbound.parse_body(raw)

    def test_nesting_is_capped_before_anything_recurses_into_it(self) -> None:
        deep: Any = {}
        for _ in range(inbound.MAX_JSON_DEPTH):
            deep = {"d": deep}
        with pytest.raises(InvalidPayload, match="nested deeper"):
            inbound.parse_body(json.dumps(deep).encode())
        inbound.parse_body(json.dumps(deep["d"]).encode())


class TestReceiving:
    """A call publishes the hook's event for its tenant and environment through publish()."""

    def test_a_call_publishes_to_the_matching_endpoints_of_the_hooks_environment(
        self, harness: Harness
    ) -> None:
        h = harness
        acme = h.tenant("acme")
        staging = h.endpoint(acme, events=["run.*"], environment="staging")
        h.endpoint(acme, events=["run.*"])
        h.endpoint(h.tenant("globex"), events=["*"], environment="staging")
        created = create(h, acme, environment="staging")

        received = receive(h, created.token, b'{"run_id": "r1", "status": "ok"}')

        assert (received.event_type, received.environment, received.created) == (
            "run.succeeded", "staging", True)
        event = h.event(received.event_id)
        assert (event.tenant_id, event.event_type, event.environment) == (acme.id, "run.succeeded", "staging")
        assert event.payload == {"run_id": "r1", "status": "ok"}
        assert [h.delivery(i).endpoint_id for i in received.delivery_ids] == [staging.id]
        assert h.sender.delivery_ids_sent() == received.delivery_ids
        assert stored(h, created.hook.id).last_used_at is not None

    def test_a_repeated_idempotency_key_answers_the_first_event(self, harness: Harness) -> None:
        created = create(harness, harness.tenant())
        first = receive(harness, created.token, idempotency_key="delivery-1")
        again = receive(harness, created.token, b'{"other": true}', idempotency_key="delivery-1")
        assert (again.event_id, again.created) == (first.event_id, False)
        assert harness.count(Event) == 1
        assert harness.event(first.event_id).idempotency_key == f"{created.hook.id}:delivery-1"

    def test_an_idempotency_key_is_scoped_to_its_hook(self, harness: Harness) -> None:
        acme = harness.tenant()
        one, two = create(harness, acme), create(harness, acme)
        harness.publish(acme, "run.succeeded", {}, idempotency_key="k")
        first = receive(harness, one.token, idempotency_key="k")
        second = receive(harness, two.token, idempotency_key="k")
        assert first.created and second.created and first.event_id != second.event_id

    @pytest.mark.parametrize("key", ["", "k" * (inbound.MAX_CALLER_KEY_LENGTH + 1)])
    def test_an_idempotency_key_out_of_bounds_is_refused(self, harness: Harness, key: str) -> None:
        created = create(harness, harness.tenant())
        with pytest.raises(InputError, match="Idempotency-Key"):
            receive(harness, created.token, idempotency_key=key)
        assert harness.count(Event) == 0

    def test_an_oversized_payload_is_refused(self, harness: Harness) -> None:
        created = create(harness, harness.tenant())
        body = json.dumps({"x": "a" * harness.settings.max_payload_bytes}).encode()
        with pytest.raises(PayloadTooLarge):
            receive(harness, created.token, body)
        assert harness.count(Event) == 0

    def test_the_token_is_checked_before_the_body(self, harness: Harness) -> None:
        with pytest.raises(UnknownIncomingWebhook):
            receive(harness, inbound.generate_token(), b"[not even json")

    def test_a_hook_revoked_after_resolution_publishes_nothing(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        created = create(harness, harness.tenant())
        harness.endpoint(created.hook.tenant_id, events=["*"])
        resolved = inbound.resolve(harness.sessions, created.token)
        inbound.revoke(harness.sessions, created.hook.id)
        monkeypatch.setattr(inbound, "resolve", lambda _sessions, _token: resolved)
        with pytest.raises(UnknownIncomingWebhook):
            receive(harness, created.token)
        assert (harness.count(Event), harness.count(Delivery)) == (0, 0)
        assert harness.sender.sent == []

    def test_a_repeated_idempotency_key_is_refused_once_the_hook_is_revoked(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        created = create(harness, harness.tenant())
        receive(harness, created.token, idempotency_key="delivery-1")
        resolved = inbound.resolve(harness.sessions, created.token)
        inbound.revoke(harness.sessions, created.hook.id)
        monkeypatch.setattr(inbound, "resolve", lambda _sessions, _token: resolved)
        with pytest.raises(UnknownIncomingWebhook):
            receive(harness, created.token, idempotency_key="delivery-1")


class TestMigration:
    """0005_incoming_webhooks builds the table the model describes, and takes it away again."""

    def test_the_migrated_table_matches_the_model(self, harness: Harness) -> None:
        with harness.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
        assert [d for d in diffs if "incoming_webhooks" in repr(d)] == []

    def test_the_downgrade_drops_the_table_and_the_upgrade_restores_it(self, harness: Harness) -> None:
        config = alembic_config(str(harness.engine.url))
        command.downgrade(config, "0004_management_api")
        assert "incoming_webhooks" not in inspect(harness.engine).get_table_names()
        assert "api_keys" in inspect(harness.engine).get_table_names()
        command.upgrade(config, "head")
        create(harness, harness.tenant())
        with transaction(harness.sessions) as session:
            assert len(list(session.scalars(select(IncomingWebhook)))) == 1
