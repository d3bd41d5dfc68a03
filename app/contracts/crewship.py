"""The Crewship contract: run events with a timestamp-bound ``sha256=`` hex HMAC.

Body::

    {"id":"evt_…","event":"run.succeeded","created_at":"2026-06-08T10:00:00Z","data":{…}}

Headers: ``X-Crewship-Event`` (event type), ``X-Crewship-Delivery`` (the delivery id:
one per event and endpoint, the same on every retry; not signed, so receivers dedupe on
the body's ``id``, see docs/contracts/crewship.md),
``X-Crewship-Timestamp`` (unix seconds at signing) and ``X-Crewship-Signature:
sha256=<hex(hmac_sha256(secret, "{timestamp}." + raw_body))>``. The HMAC key is the
secret's UTF-8 bytes.
"""

from __future__ import annotations

import secrets

from app.contracts.base import (
    AttemptContext,
    EventView,
    RenderedRequest,
    canonical_json,
    iso_utc_seconds,
    signed_headers,
    validate_printable_secret,
)
from app.signing import hmac_sha256_hex

SIGNATURE_HEADER = "X-Crewship-Signature"


class CrewshipContract:
    name = "crewship"
    description = "Crewship: X-Crewship-* headers, sha256= hex HMAC over '{timestamp}.body'"
    reserved_headers = frozenset({
        "x-crewship-event", "x-crewship-delivery", "x-crewship-timestamp", "x-crewship-signature",
    })

    def body(self, event: EventView) -> bytes:
        return canonical_json({
            "id": event.id,
            "event": event.type,
            "created_at": iso_utc_seconds(event.occurred_at),
            "data": dict(event.data),
        })

    @staticmethod
    def signature(secret: str, timestamp: int, body: bytes) -> str:
        return "sha256=" + hmac_sha256_hex(secret, f"{timestamp}.".encode() + body)

    def render(self, event: EventView, context: AttemptContext) -> RenderedRequest:
        body = self.body(event)
        ts = context.timestamp
        headers = {
            "Content-Type": "application/json",
            "X-Crewship-Event": event.type,
            "X-Crewship-Delivery": context.delivery_id,
            "X-Crewship-Timestamp": str(ts),
            **signed_headers(SIGNATURE_HEADER, context.keys,
                             lambda secret: self.signature(secret, ts, body)),
        }
        return RenderedRequest(body=body, headers=headers)

    def generate_secret(self) -> str:
        return "cssk_" + secrets.token_hex(32)

    def validate_secret(self, secret: str) -> None:
        validate_printable_secret(secret)
