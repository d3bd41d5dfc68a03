"""Payload hygiene: what of an event's data may reach a receiver. Pure.

The convention: a key starting with ``_`` is internal at any depth (``_provider``,
``{"metadata": {"_trace": …}}``), and each event type may deny further keys by name
(the catalogue's ``internal_fields``, e.g. ``provider`` for CrewPass events). Both are
removed from objects at every depth, including objects inside arrays, before any
contract renders the payload. The stored event keeps everything it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INTERNAL_PREFIX = "_"


def is_internal(key: str, deny: frozenset[str]) -> bool:
    return key.startswith(INTERNAL_PREFIX) or key in deny


def public_payload(data: Mapping[str, Any], deny: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of *data* without internal keys, at every depth."""
    denied = frozenset(deny)
    return {k: _clean(v, denied) for k, v in data.items() if not is_internal(k, denied)}


def _clean(value: Any, deny: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _clean(v, deny) for k, v in value.items() if not is_internal(str(k), deny)}
    if isinstance(value, list):
        return [_clean(item, deny) for item in value]
    return value
