"""Helpers the tests share: independent verifiers of every wire contract, and a polling wait.

The verifiers are written from each product's documentation (and, where the
documentation is silent, from Hookline's docs pages in docs/contracts/), not from
Hookline's signing or verification code, so a mistake there cannot hide itself here.
Standard Webhooks is checked with the ``standardwebhooks`` package instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def crewpass_signature_ok(secret: str, headers: Mapping[str, str], raw_body: bytes,
                          tolerance: int = 300, *, now: float | None = None,
                          header: str = "x-crewpass-signature") -> bool:
    """``X-CrewPass-Signature: v1=<hex(hmac_sha256(secret, "{timestamp}." + raw_body))>``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-crewpass-timestamp")
    signature = lowered.get(header.lower())
    if not timestamp or not signature or not signature.startswith("v1="):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature[3:], expected)


def crewship_signature_ok(secret: str, headers: Mapping[str, str], raw_body: bytes,
                          tolerance: int = 300, *, now: float | None = None,
                          header: str = "x-crewship-signature") -> bool:
    """``X-Crewship-Signature: sha256=<hex(hmac_sha256(secret, "{timestamp}." + raw_body))>``
    with ``X-Crewship-Timestamp`` in unix seconds and an ``X-Crewship-Delivery`` id."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-crewship-timestamp")
    signature = lowered.get(header.lower())
    if not timestamp or not signature or not lowered.get("x-crewship-delivery"):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + mac.hexdigest())


def wallet_crew_signature_ok(secret: str, headers: Mapping[str, str], raw_body: bytes, *,
                             header: str = "x-neostore-signature") -> bool:
    """"HMAC SHA-256 of the exact raw body using signatureSecret", hex-encoded."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(header.lower())
    if not signature:
        return False
    return hmac.compare_digest(signature, hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest())


def cr3dentials_auth_ok(secret: str, headers: Mapping[str, str], _raw_body: bytes = b"", *,
                        header: str = "x-api-key") -> bool:
    """"Validate the auth header you configured": the header's value equals the secret."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(header.lower()) == secret


def standard_webhooks_ok(secret: str, headers: Mapping[str, str], raw_body: bytes) -> bool:
    """The ``standardwebhooks`` package's own verification (current time, 5 minutes)."""
    try:
        Webhook(secret).verify(raw_body, dict(headers))
    except WebhookVerificationError:
        return False
    return True


def independently_verified(contract: str, secret: str, headers: Mapping[str, str],
                           raw_body: bytes) -> bool:
    """The documented verification of *contract*, on the documented header only."""
    checks: dict[str, Callable[[str, Mapping[str, str], bytes], bool]] = {
        "crewpass": crewpass_signature_ok,
        "crewship": crewship_signature_ok,
        "wallet-crew": wallet_crew_signature_ok,
        "cr3dentials": cr3dentials_auth_ok,
        "standard-webhooks": standard_webhooks_ok,
    }
    return checks[contract](secret, headers, raw_body)


def body_json(raw_body: bytes) -> Any:
    return json.loads(raw_body.decode("utf-8"))


def wait_until(predicate: Callable[[], object], timeout: float = 20.0,
               interval: float = 0.1, what: str = "condition") -> None:
    """Poll *predicate* until it is truthy; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
