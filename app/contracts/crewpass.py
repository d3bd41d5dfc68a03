"""The CrewPass contract: envelope, headers and ``v1=`` HMAC-SHA256 signature.

Body::

    {"schema_version":1,"event_id":…,"event_type":…,"occurred_at":…,"partner_id":…,"data":{…}}

Headers: ``X-CrewPass-Event-Id``, ``X-CrewPass-Event-Type``, ``X-CrewPass-Timestamp``
(unix seconds at signing), ``X-CrewPass-Signature: v1=<hex(hmac_sha256(secret,
"{timestamp}." + raw_body))>``, ``X-CrewPass-Schema-Version: 1``. The partner is the
tenant the event was published for. The HMAC key is the secret's UTF-8 bytes.
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

SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-CrewPass-Signature"


class CrewPassContract:
    name = "crewpass"
    description = "CrewPass v1: JSON envelope, X-CrewPass-* headers, v1= hex HMAC over '{timestamp}.body'"
    reserved_headers = frozenset({
        "x-crewpass-event-id", "x-crewpass-event-type", "x-crewpass-timestamp",
        "x-crewpass-signature", "x-crewpass-schema-version",
    })

    def body(self, event: EventView) -> bytes:
        return canonical_json(
            {
                "schema_version": SCHEMA_VERSION,
                "event_id": event.id,
                "event_type": event.type,
                "occurred_at": iso_utc_seconds(event.occurred_at),
                "partner_id": event.tenant_id,
                "data": dict(event.data),
            }
        )

    @staticmethod
    def signature(secret: str, timestamp: int, body: bytes) -> str:
        return "v1=" + hmac_sha256_hex(secret, f"{timestamp}.".encode() + body)

    def render(self, event: EventView, context: AttemptContext) -> RenderedRequest:
        body = self.body(event)
        ts = context.timestamp
        signatures = signed_headers(SIGNATURE_HEADER, context.keys,
                                    lambda secret: self.signature(secret, ts, body))
        headers = {
            "Content-Type": "application/json",
            "X-CrewPass-Event-Id": event.id,
            "X-CrewPass-Event-Type": event.type,
            "X-CrewPass-Timestamp": str(ts),
            SIGNATURE_HEADER: signatures.pop(SIGNATURE_HEADER),
            "X-CrewPass-Schema-Version": str(SCHEMA_VERSION),
            **signatures,
        }
        return RenderedRequest(body=body, headers=headers)

    def generate_secret(self) -> str:
        return "cpsk_" + secrets.token_hex(32)

    def validate_secret(self, secret: str) -> None:
        validate_printable_secret(secret)
