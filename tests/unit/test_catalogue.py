"""The event catalogue: known, unknown and malformed event types."""

from __future__ import annotations

import pytest

from app.catalogue import (
    BUILTIN_EVENT_TYPES,
    MAX_EVENT_TYPE_LENGTH,
    Catalogue,
    EventType,
    default_catalogue,
)
from app.errors import InputError, InvalidEventType, UnknownEventType


class TestRequire:
    """require() returns a known type and names the problem with any other."""

    @pytest.mark.parametrize(
        ("name", "scope"),
        [("crew.document.processed", "crew:documents:read"), ("Pass:Created", None),
         ("run.succeeded", None), ("hookline.ping", None)],
    )
    def test_a_known_type_is_returned(self, name: str, scope: str | None) -> None:
        event_type = default_catalogue().require(name)
        assert event_type.name == name
        assert event_type.scope == scope

    def test_an_unknown_type_is_refused_by_name(self) -> None:
        with pytest.raises(UnknownEventType, match=r"acme\.thing\.happened") as caught:
            default_catalogue().require("acme.thing.happened")
        assert caught.value.name == "acme.thing.happened"
        assert isinstance(caught.value, InputError)

    @pytest.mark.parametrize(
        "name",
        ["nodots", "a..b", "", ".a.b", "a.b.", "Pass:", "1abc.def", "crew document.x",
         "a." + "b" * 198, None],
        ids=["nodots", "double-dot", "empty", "leading-dot", "trailing-dot", "trailing-colon",
             "leading-digit", "space", "200-chars", "not-a-string"],
    )
    def test_a_malformed_name_is_refused(self, name: str) -> None:
        with pytest.raises(InvalidEventType):
            default_catalogue().require(name)

    def test_the_length_limit_is_inclusive(self) -> None:
        at_limit = "a." + "b" * (MAX_EVENT_TYPE_LENGTH - 2)
        with pytest.raises(UnknownEventType):  # well-formed, just not in the catalogue
            default_catalogue().require(at_limit)
        with pytest.raises(InvalidEventType, match="longer than"):
            default_catalogue().require(at_limit + "b")


class TestCatalogue:
    """The default catalogue holds the built-ins plus the deployment's extras."""

    def test_every_builtin_type_is_present(self) -> None:
        catalogue = default_catalogue()
        assert [t.name for t in catalogue] == [t.name for t in BUILTIN_EVENT_TYPES]
        assert "Customer:Upserted" in catalogue
        assert "acme.thing.happened" not in catalogue

    def test_an_extra_type_is_accepted(self) -> None:
        catalogue = default_catalogue(extra=["acme.thing.happened"])
        assert catalogue.require("acme.thing.happened").name == "acme.thing.happened"
        assert "Pass:Created" in catalogue

    def test_a_malformed_extra_type_is_refused(self) -> None:
        with pytest.raises(InvalidEventType):
            default_catalogue(extra=["not valid"])

    def test_a_custom_catalogue_knows_only_its_types(self) -> None:
        catalogue = Catalogue([EventType("a.b", "test")])
        assert catalogue.require("a.b").description == "test"
        with pytest.raises(UnknownEventType):
            catalogue.require("Pass:Created")
