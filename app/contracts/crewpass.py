"""The CrewPass contract: envelope, headers and ``v1=`` HMAC-SHA256 signature.

Body::

    {"schema_version":1,"event_id":…,"event_type":…,"occurred_at":…,"partner_id":…,"data":{…}}

Headers: ``X-CrewPass-Event-Id``, ``X-CrewPass-Event-Type``, ``X-CrewPass-Timestamp``
(unix seconds at signing), ``X-CrewPass-Signature: v1=<hex(hmac_sha256(secret,
"{timestamp}." + raw_body))>``, ``X-CrewPass-Schema-Version: 1``. The partner is the
tenant the event was published for.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from app.contracts.base import (
    EventView,
    RenderedRequest,
    SignatureError,
    canonical_json,
    header,
    iso_utc_seconds,
)
from app.signing import constant_time_equal, hmac_sha256_hex

SCHEMA_VERSION = 1


class CrewPassContract:
    name = "crewpass"

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

    def render(
        self, event: EventView, delivery_id: str, secret: str, timestamp: int
    ) -> RenderedRequest:
        body = self.body(event)
        return RenderedRequest(
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-CrewPass-Event-Id": event.id,
                "X-CrewPass-Event-Type": event.type,
                "X-CrewPass-Timestamp": str(timestamp),
                "X-CrewPass-Signature": self.signature(secret, timestamp, body),
                "X-CrewPass-Schema-Version": str(SCHEMA_VERSION),
            },
        )

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: int,
        tolerance: int = 300,
    ) -> None:
        timestamp_text = header(headers, "X-CrewPass-Timestamp")
        given = header(headers, "X-CrewPass-Signature")
        try:
            timestamp = int(timestamp_text)
        except ValueError:
            raise SignatureError("X-CrewPass-Timestamp is not an integer") from None
        if abs(now - timestamp) > tolerance:
            raise SignatureError("stale timestamp")
        if not constant_time_equal(given, self.signature(secret, timestamp, body)):
            raise SignatureError("bad signature")

    def generate_secret(self) -> str:
        return "cpsk_" + secrets.token_hex(32)
