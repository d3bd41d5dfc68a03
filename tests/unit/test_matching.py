"""Subscription matching and filter validation."""

from __future__ import annotations

import pytest

from app.catalogue import default_catalogue
from app.errors import InvalidEventType, UnknownEventType
from app.matching import matches, matches_any, validate_filters

CATALOGUE = default_catalogue()


class TestMatches:
    """A filter is '*', a category wildcard, or an exact name."""

    @pytest.mark.parametrize(
        ("pattern", "event_type", "expected"),
        [
            ("*", "Pass:Created", True),
            ("*", "crew.status.changed", True),
            ("Customer:*", "Customer:Upserted", True),
            ("Customer:*", "CustomerX:Upserted", False),
            ("Customer:*", "Pass:Created", False),
            ("crew.document.*", "crew.document.processed", True),
            ("crew.document.*", "crew.status.changed", False),
            ("crew.*", "crew.document.processed", True),
            ("Pass:Created", "Pass:Created", True),
            ("Pass:Created", "Pass:CreatedLater", False),
            ("Pass:Created", "pass:created", False),
        ],
    )
    def test_matches(self, pattern: str, event_type: str, expected: bool) -> None:
        assert matches(pattern, event_type) is expected

    @pytest.mark.parametrize(
        ("patterns", "event_type", "expected"),
        [
            (["Pass:Created", "Customer:*"], "Customer:Upserted", True),
            (["Pass:Created", "Customer:*"], "Pass:Created", True),
            (["Pass:Created", "Customer:*"], "Pass:Installed", False),
            ([], "Pass:Created", False),
        ],
    )
    def test_matches_any(self, patterns: list[str], event_type: str, expected: bool) -> None:
        assert matches_any(patterns, event_type) is expected


class TestValidateFilters:
    """Filters are checked against the catalogue and returned deduplicated, in order."""

    @pytest.mark.parametrize(
        ("patterns", "expected"),
        [
            (["Pass:Created"], ["Pass:Created"]),
            (["*"], ["*"]),
            (["Customer:*", "crew.document.*"], ["Customer:*", "crew.document.*"]),
            (["Pass:Created", "*", "Pass:Created", "*"], ["Pass:Created", "*"]),
            ([" Pass:Created ", "Pass:Created"], ["Pass:Created"]),
            (["acme.*"], ["acme.*"]),
        ],
    )
    def test_accepted_filters(self, patterns: list[str], expected: list[str]) -> None:
        assert validate_filters(patterns, CATALOGUE) == expected

    def test_an_unknown_exact_name_is_refused_by_name(self) -> None:
        with pytest.raises(UnknownEventType, match=r"acme\.thing\.happened") as caught:
            validate_filters(["Pass:Created", "acme.thing.happened"], CATALOGUE)
        assert caught.value.name == "acme.thing.happened"

    @pytest.mark.parametrize("pattern", ["Cust*", ":*", ".*", "*.*", "Customer:**", "1abc.*",
                                         "crew..*", "nodots"])
    def test_a_malformed_filter_is_refused(self, pattern: str) -> None:
        with pytest.raises(InvalidEventType):
            validate_filters([pattern], CATALOGUE)

    def test_an_empty_filter_list_is_refused(self) -> None:
        with pytest.raises(InvalidEventType, match="at least one"):
            validate_filters([], CATALOGUE)
