"""Payload hygiene: internal fields never reach a receiver, whatever their depth."""

from __future__ import annotations

from app.catalogue import default_catalogue
from app.hygiene import public_payload


def test_underscore_keys_are_removed_at_the_top_level() -> None:
    assert public_payload({"status": "ok", "_provider": "Acme Checks"}) == {"status": "ok"}


def test_underscore_keys_are_removed_inside_objects_and_arrays() -> None:
    data = {"metadata": {"channel": "web", "_operator": "bob"},
            "documents": [{"id": "d1", "_source": "x"}, {"id": "d2"}]}
    assert public_payload(data) == {"metadata": {"channel": "web"},
                                    "documents": [{"id": "d1"}, {"id": "d2"}]}


def test_denied_keys_are_removed_at_any_depth() -> None:
    data = {"status": "completed", "provider": "Acme", "check": {"provider": "Acme", "result": "ok"}}
    assert public_payload(data, {"provider"}) == {"status": "completed", "check": {"result": "ok"}}


def test_public_values_are_kept_unchanged_and_the_input_is_not_modified() -> None:
    data = {"a": [1, "two", None, {"b": True}], "_x": 1}
    assert public_payload(data) == {"a": [1, "two", None, {"b": True}]}
    assert data == {"a": [1, "two", None, {"b": True}], "_x": 1}


def test_crewpass_event_types_deny_the_provider_name() -> None:
    catalogue = default_catalogue()
    for name in ("crew.document.processed", "crew.status.changed", "crew.compliance.changed"):
        data = {"background_check": {"status": "completed", "provider": "Sterling"}}
        assert public_payload(data, catalogue.internal_fields(name)) == {
            "background_check": {"status": "completed"}}


def test_deployment_event_types_can_declare_their_own_deny_list() -> None:
    catalogue = default_catalogue([{"name": "order.shipped", "internal_fields": ["warehouse_cost"]}])
    assert catalogue.internal_fields("order.shipped") == frozenset({"warehouse_cost"})
    assert catalogue.internal_fields("no.such_type") == frozenset()
