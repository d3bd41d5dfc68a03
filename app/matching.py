"""Subscription matching: which endpoint filters an event type satisfies.

A filter is an exact name (``Pass:Created``), a category wildcard (``Customer:*``,
``crew.document.*``: every type under that prefix), or ``*`` (everything but the
operational events, :mod:`app.operational`, which an endpoint must name). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from app.catalogue import Catalogue
from app.errors import InvalidEventType
from app.operational import is_operational

_CATEGORY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(?:[.:][A-Za-z][A-Za-z0-9_-]*)*[.:]\*$")


def matches(pattern: str, event_type: str) -> bool:
    """True if the filter *pattern* selects *event_type*."""
    if pattern == "*":
        return not is_operational(event_type)
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches_any(patterns: Iterable[str], event_type: str) -> bool:
    return any(matches(pattern, event_type) for pattern in patterns)


def validate_filters(patterns: Sequence[str], catalogue: Catalogue) -> list[str]:
    """Check filter patterns; exact names must be in the catalogue. Returns them deduplicated."""
    if not patterns:
        raise InvalidEventType("an endpoint needs at least one event filter (use '*' for all)")
    seen: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if pattern == "*":
            pass
        elif pattern.endswith("*"):
            if not _CATEGORY_RE.match(pattern):
                raise InvalidEventType(
                    f"malformed filter {pattern!r}: wildcards look like 'Customer:*' or 'crew.document.*'"
                )
        else:
            catalogue.require(pattern)
        if pattern not in seen:
            seen.append(pattern)
    return seen
