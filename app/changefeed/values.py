"""Column values made JSON-ready, digested, and round-tripped through a stored position.

Pure functions. A watched row's values (datetimes, decimals, enums, UUIDs…) become
the JSON a payload carries (:func:`jsonable`); a polling watcher compares rows by a
digest of those values (:func:`digest`) and keeps its cursor in JSON without losing
the value's type (:func:`tag` / :func:`untag`).
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    """*value* as JSON-ready data; ``TypeError`` for a type with no obvious JSON form.

    Datetimes become ISO 8601 in UTC with a ``Z`` (naive ones are taken as UTC),
    dates and times ISO 8601, decimals and UUIDs strings (exact), enums their value.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"{value!r} has no JSON form")
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    raise TypeError(f"a {type(value).__name__} value has no JSON form; leave it out of the "
                    "allow-list or build the payload yourself")


def canonical(value: Any) -> str:
    """Sorted, compact JSON of *value* (made JSON-ready first): equal data, equal text."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(values: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of *values*."""
    return hashlib.sha256(canonical(values).encode()).hexdigest()


_TAGGED: dict[str, type] = {"int": int, "float": float, "str": str, "decimal": Decimal,
                            "datetime": datetime, "date": date}


def tag(value: Any) -> dict[str, Any] | None:
    """A cursor or key value as JSON that :func:`untag` turns back into the same value."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean cannot be a cursor or key")
    if isinstance(value, datetime):
        return {"t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {"t": "str", "v": str(value)}
    for name in ("int", "float", "str"):
        if isinstance(value, _TAGGED[name]):
            return {"t": name, "v": value}
    raise TypeError(f"a {type(value).__name__} value cannot be a cursor or key")


def untag(tagged: Mapping[str, Any] | None) -> Any:
    """The value :func:`tag` stored."""
    if tagged is None:
        return None
    kind, raw = tagged["t"], tagged["v"]
    if kind == "datetime":
        return datetime.fromisoformat(raw)
    if kind == "date":
        return date.fromisoformat(raw)
    if kind == "decimal":
        return Decimal(raw)
    if kind in ("int", "float", "str"):
        return _TAGGED[kind](raw)
    raise ValueError(f"unknown tagged value kind {kind!r}")
