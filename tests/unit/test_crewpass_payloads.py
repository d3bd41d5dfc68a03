"""The CrewPass payloads: each builder sends exactly its allow-listed keys, and nothing internal."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from app.changefeed import Change
from crewpass import payloads
from crewpass.vocabulary import SHARED_PROFILE_FIELDS

PROVIDER = "Sterling Background Ltd"
NOTES = "flagged by ops, call before renewal"
NUMBER = "CoC-0044-1987"
PHONE = "+44 7700 900123"
EMAIL = "ada@crew.example"

#: What must never be sent, offered to every builder in ``Change.values`` as if allow-listed by mistake.
INTERNAL_VALUES = {
    "background_check_provider": PROVIDER, "provider": PROVIDER, "verified_by": PROVIDER,
    "internal_notes": NOTES, "number": NUMBER, "phone": PHONE, "email": EMAIL,
    "date_of_birth": "1987-04-01",
}


def change(values: Mapping[str, Any], changes: Mapping[str, tuple[Any, Any]], *,
           source: str = "orm:CrewMember") -> Change:
    return Change(operation="update", source=source, values=dict(values), changes=dict(changes))


def document_change(old: str = "pending", new: str = "verified", **extra: Any) -> Change:
    return change({"crew_id": "crw_1", "document_id": "doc_1", "document_type": "stcw_basic_safety",
                   "expires_on": "2031-05-01", **extra},
                  {"verification_status": (old, new)}, source="orm:Document")


def crew_values(**extra: Any) -> dict[str, Any]:
    return {"crew_id": "crw_1", "verification_status": "verified", "background_check_status": "completed",
            "given_name": "Ada", "family_name": "Lovelace", "rank": "Chief Officer", "nationality": "GB",
            **extra}


class TestDocument:
    """``crew.document.processed`` and ``crew.document.updated`` share one builder."""

    def test_the_keys_are_exactly_the_allow_list(self) -> None:
        assert set(payloads.document(document_change())) == {
            "crew_id", "document_id", "document_type", "verification_status", "previous_status", "expires_on"}

    def test_it_carries_the_new_and_previous_status(self) -> None:
        assert payloads.document(document_change("processing", "rejected")) == {
            "crew_id": "crw_1", "document_id": "doc_1", "document_type": "stcw_basic_safety",
            "verification_status": "rejected", "previous_status": "processing", "expires_on": "2031-05-01"}

    def test_a_document_without_expiry_sends_null(self) -> None:
        built = payloads.document(change({"crew_id": "crw_1", "document_id": "doc_1", "document_type": "coc",
                                          "expires_on": None},
                                         {"verification_status": ("verified", "expired")}))
        assert built["expires_on"] is None
        assert (built["verification_status"], built["previous_status"]) == ("expired", "verified")

    def test_its_field_map_reads_only_shared_document_columns(self) -> None:
        assert payloads.DOCUMENT_FIELDS == {"crew_id": "crew_id", "document_id": "id",
                                            "document_type": "document_type", "expires_on": "expires_on"}


class TestCompliance:
    """``crew.compliance.changed`` carries the new and previous ``overall_status``."""

    def test_the_keys_and_values(self) -> None:
        built = payloads.compliance(change({"crew_id": "crw_1"},
                                           {"compliance_status": ("compliant", "at_risk")}))
        assert built == {"crew_id": "crw_1", "overall_status": "at_risk", "previous_status": "compliant"}


class TestStatus:
    """``crew.status.changed`` carries both statuses now, and the previous value of each that changed."""

    def test_one_status_changed(self) -> None:
        built = payloads.status(change(crew_values(), {"verification_status": ("pending", "verified")}))
        assert built == {"crew_id": "crw_1", "verification_status": "verified",
                         "background_check_status": "completed",
                         "previous": {"verification_status": "pending"}}

    def test_both_statuses_changed(self) -> None:
        built = payloads.status(change(crew_values(), {
            "verification_status": ("pending", "verified"),
            "background_check_status": ("in-progress", "completed")}))
        assert built["previous"] == {"verification_status": "pending",
                                     "background_check_status": "in-progress"}
        assert set(built) == {"crew_id", "verification_status", "background_check_status", "previous"}

    def test_its_field_map_reads_only_the_id_and_the_two_statuses(self) -> None:
        assert payloads.STATUS_FIELDS == {"crew_id": "id", "verification_status": "verification_status",
                                          "background_check_status": "background_check_status"}


class TestProfile:
    """``crew.profile.updated`` names the changed fields and sends the shared profile values only."""

    def test_the_keys_and_values(self) -> None:
        built = payloads.profile(change(crew_values(), {"rank": ("Second Officer", "Chief Officer")}))
        assert built == {"crew_id": "crw_1", "updated_fields": ["rank"],
                         "profile": {"given_name": "Ada", "family_name": "Lovelace", "rank": "Chief Officer",
                                     "nationality": "GB"}}

    def test_contact_details_are_named_but_their_values_are_not_sent(self) -> None:
        built = payloads.profile(change(crew_values(), {
            "phone": (None, PHONE), "email": ("old@x.example", EMAIL), "family_name": ("Byron", "Lovelace")}))
        assert built["updated_fields"] == ["email", "family_name", "phone"]
        assert set(built["profile"]) == set(SHARED_PROFILE_FIELDS)
        serialised = json.dumps(built)
        assert PHONE not in serialised and EMAIL not in serialised and "old@x.example" not in serialised

    def test_its_field_map_has_no_contact_details(self) -> None:
        assert payloads.PROFILE_VALUES == {"crew_id": "id", "given_name": "given_name",
                                           "family_name": "family_name", "rank": "rank",
                                           "nationality": "nationality"}


BUILDERS: dict[str, tuple[Callable[[Change], Mapping[str, Any]], Change]] = {
    "document": (payloads.document, document_change(**INTERNAL_VALUES)),
    "compliance": (payloads.compliance, change({"crew_id": "crw_1", **INTERNAL_VALUES},
                                               {"compliance_status": ("compliant", "non_compliant")})),
    "status": (payloads.status, change(crew_values(**INTERNAL_VALUES),
                                       {"background_check_status": ("in-progress", "completed")})),
    "profile": (payloads.profile, change(crew_values(**INTERNAL_VALUES), {"given_name": ("Augusta", "Ada")})),
}


class TestNothingInternalLeaves:
    """Even if an internal column reached ``Change.values``, no builder would send it."""

    @pytest.mark.parametrize("name", sorted(BUILDERS))
    def test_no_internal_value_appears_anywhere_in_the_payload(self, name: str) -> None:
        builder, offered = BUILDERS[name]
        serialised = json.dumps(builder(offered))
        for value in (PROVIDER, NOTES, NUMBER, PHONE, EMAIL, "1987-04-01"):
            assert value not in serialised, (name, value)

    @pytest.mark.parametrize("name", sorted(BUILDERS))
    def test_no_internal_key_appears_at_any_depth(self, name: str) -> None:
        builder, offered = BUILDERS[name]

        def keys(value: Any) -> set[str]:
            if isinstance(value, Mapping):
                return set(value) | {k for v in value.values() for k in keys(v)}
            if isinstance(value, list):
                return {k for item in value for k in keys(item)}
            return set()

        assert keys(builder(offered)).isdisjoint(INTERNAL_VALUES), name

    @pytest.mark.parametrize("name", sorted(BUILDERS))
    def test_the_keys_do_not_depend_on_what_values_offers(self, name: str) -> None:
        builder, offered = BUILDERS[name]
        plain = Change(operation=offered.operation, source=offered.source,
                       values={k: v for k, v in offered.values.items() if k not in INTERNAL_VALUES},
                       changes=offered.changes)
        assert builder(offered) == builder(plain)
