"""The Standard Webhooks contract (standardwebhooks.com; the format Svix sends).

Body::

    {"type":"run.succeeded","timestamp":"2026-06-08T10:00:00Z","data":{…}}

Headers: ``webhook-id`` (the event id, the same on every retry), ``webhook-timestamp``
(unix seconds at signing) and ``webhook-signature: v1,<base64(hmac_sha256(key,
"{id}.{timestamp}." + raw_body))>``, where *key* is the base64-decoded part of a
``whsec_…`` secret. During a rotation's grace period the header lists both
signatures, space-separated, the current secret's first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from app.contracts.base import (
    AttemptContext,
    EventView,
    RenderedRequest,
    canonical_json,
    iso_utc_seconds,
)
from app.errors import InvalidEndpointConfig

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEndpointConfig("a Standard Webhooks secret is whsec_ + base64") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    message = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class StandardWebhooksContract:
    name = "standard-webhooks"
    description = "Standard Webhooks: webhook-id/-timestamp/-signature, v1,<base64> HMAC, whsec_ secrets"
    reserved_headers = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})

    def body(self, event: EventView) -> bytes:
        return canonical_json({
            "type": event.type,
            "timestamp": iso_utc_seconds(event.occurred_at),
            "data": dict(event.data),
        })

    def render(self, event: EventView, context: AttemptContext) -> RenderedRequest:
        body = self.body(event)
        ts = context.timestamp
        signatures = [sign(context.keys.current, event.id, ts, body)]
        if context.keys.previous is not None:
            signatures.append(sign(context.keys.previous, event.id, ts, body))
        return RenderedRequest(body=body, headers={
            "Content-Type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(ts),
            "webhook-signature": " ".join(signatures),
        })

    def generate_secret(self) -> str:
        return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()

    def validate_secret(self, secret: str) -> None:
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
            raise InvalidEndpointConfig("a Standard Webhooks secret starts with whsec_")
        if not MIN_KEY_BYTES <= len(secret_key(secret)) <= MAX_KEY_BYTES:
            raise InvalidEndpointConfig(
                f"a Standard Webhooks secret holds {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
