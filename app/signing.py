"""HMAC signing primitives shared by the wire contracts. Pure; no clock, no I/O."""

from __future__ import annotations

import hashlib
import hmac


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
