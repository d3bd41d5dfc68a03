"""What a wire contract is: data in, exact bytes and headers out.

A contract renders one attempt of one delivery. It is pure: the signing time is a
parameter, so the same inputs always give the same bytes (golden vectors pin them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class EventView:
    """What a contract may see of an event."""

    id: str
    type: str
    tenant_id: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """The exact body bytes and headers of one attempt."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class SignatureError(Exception):
    """A receiver-side verification failed: bad signature, stale timestamp or missing header."""


class Contract(Protocol):
    name: str

    def render(
        self, event: EventView, delivery_id: str, secret: str, timestamp: int
    ) -> RenderedRequest: ...

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: int,
        tolerance: int = 300,
    ) -> None: ...

    def generate_secret(self) -> str: ...


def canonical_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, keys in the order given: the bytes that get signed."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def iso_utc_seconds(moment: datetime) -> str:
    """``2026-06-08T10:00:00Z``: UTC, whole seconds, as the seeds' envelopes show."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def header(headers: Mapping[str, str], name: str) -> str:
    """A header value looked up case-insensitively; ``SignatureError`` if missing."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    raise SignatureError(f"missing header {name}")
