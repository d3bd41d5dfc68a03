"""The Cr3dentials contract: the session payload, authenticated by a static header.

Body, keys always present and in this order::

    {"sessionId":…,"status":…,"platformId":…,"externalReferenceId":…,
     "extractedData":…,"proofHash":…,"completedAt":…,"metadata":…}

Each value comes from the event's public data; a missing key is ``null``, except
``status`` (derived from the event type: ``session.partial_complete`` →
``PARTIAL_COMPLETE``) and ``completedAt`` (the event's time, ``…T12:05:00.000Z``).
Other data keys are not sent. There is no HMAC: the endpoint's secret is sent as the
value of its authentication header (``X-API-Key`` unless configured otherwise) on
every delivery. ``sessionId`` is the idempotency key on both sides.
"""

from __future__ import annotations

import secrets
from typing import Any

from app.contracts.base import (
    AttemptContext,
    EventView,
    RenderedRequest,
    canonical_json,
    iso_utc_millis,
    signed_headers,
    validate_printable_secret,
)

DEFAULT_AUTH_HEADER = "X-API-Key"
PAYLOAD_KEYS = ("sessionId", "status", "platformId", "externalReferenceId", "extractedData",
                "proofHash", "completedAt", "metadata")
TERMINAL_STATUSES = ("COMPLETED", "PARTIAL_COMPLETE", "ERROR", "CANCELLED", "TERMINATED")


def status_for(event_type: str) -> str:
    """``session.partial_complete`` → ``PARTIAL_COMPLETE``."""
    return event_type.rsplit(".", 1)[-1].rsplit(":", 1)[-1].upper()


class Cr3dentialsContract:
    name = "cr3dentials"
    description = "Cr3dentials: session payload, static authentication header, no HMAC"
    reserved_headers: frozenset[str] = frozenset()

    def body(self, event: EventView) -> bytes:
        data = event.data
        document: dict[str, Any] = {key: data.get(key) for key in PAYLOAD_KEYS}
        if document["status"] is None:
            document["status"] = status_for(event.type)
        if "completedAt" not in data:
            document["completedAt"] = iso_utc_millis(event.occurred_at)
        return canonical_json(document)

    def render(self, event: EventView, context: AttemptContext) -> RenderedRequest:
        auth = context.auth_header or DEFAULT_AUTH_HEADER
        headers = {"Content-Type": "application/json",
                   **signed_headers(auth, context.keys, lambda secret: secret)}
        return RenderedRequest(body=self.body(event), headers=headers)

    def generate_secret(self) -> str:
        return "c3k_" + secrets.token_urlsafe(32)

    def validate_secret(self, secret: str) -> None:
        validate_printable_secret(secret)
