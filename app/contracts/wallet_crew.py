"""The Wallet Crew contract: ``__``-prefixed metadata in the body, hex HMAC of the body.

Body: the event's metadata first, then its public data fields::

    {"__id":"evt_…","__eventName":"Customer:Upserted","__tenantId":"ten_…",
     "__createdAt":"2026-06-08T10:00:00Z", …data}

``__id`` is the event id, the receiver's idempotency key. Headers:
``x-neostore-signature`` (lower-case hex of hmac_sha256(secret, raw_body), no prefix;
the key is the secret's UTF-8 bytes), ``x-neostore-eventname`` and
``x-neostore-tenantid``. The signature covers the body only, so it is the same on
every attempt; the format has no timestamp and receivers dedupe on ``__id``.
"""

from __future__ import annotations

import secrets
from typing import Any

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

SIGNATURE_HEADER = "x-neostore-signature"


class WalletCrewContract:
    name = "wallet-crew"
    description = "The Wallet Crew: __-prefixed metadata, x-neostore-* headers, hex HMAC of the body"
    reserved_headers = frozenset({"x-neostore-signature", "x-neostore-eventname",
                                  "x-neostore-tenantid"})

    def body(self, event: EventView) -> bytes:
        document: dict[str, Any] = {
            "__id": event.id,
            "__eventName": event.type,
            "__tenantId": event.tenant_id,
            "__createdAt": iso_utc_seconds(event.occurred_at),
        }
        for key, value in event.data.items():
            if not key.startswith("__"):
                document[key] = value
        return canonical_json(document)

    def render(self, event: EventView, context: AttemptContext) -> RenderedRequest:
        body = self.body(event)
        signatures = signed_headers(SIGNATURE_HEADER, context.keys,
                                    lambda secret: hmac_sha256_hex(secret, body))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signatures.pop(SIGNATURE_HEADER),
            "x-neostore-eventname": event.type,
            "x-neostore-tenantid": event.tenant_id,
            **signatures,
        }
        return RenderedRequest(body=body, headers=headers)

    def generate_secret(self) -> str:
        return "wcsk_" + secrets.token_urlsafe(32)

    def validate_secret(self, secret: str) -> None:
        validate_printable_secret(secret)
