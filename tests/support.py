"""Helpers the tests share: an independent CrewPass verifier and a polling wait.

The verifier is written from the CrewPass documentation's wording, not from
Hookline's signing code, so a mistake there cannot hide itself here.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping


def crewpass_signature_ok(secret: str, headers: Mapping[str, str], raw_body: bytes,
                          tolerance: int = 300) -> bool:
    """``X-CrewPass-Signature: v1=<hex(hmac_sha256(secret, "{timestamp}." + raw_body))>``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-crewpass-timestamp")
    signature = lowered.get("x-crewpass-signature")
    if not timestamp or not signature or not signature.startswith("v1="):
        return False
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature[3:], expected)


def wait_until(predicate: Callable[[], object], timeout: float = 20.0,
               interval: float = 0.1, what: str = "condition") -> None:
    """Poll *predicate* until it is truthy; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
