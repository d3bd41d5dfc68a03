"""Receiver-side verification of Hookline deliveries, for every wire contract.

This module depends on the Python standard library only: a receiver may copy this
one file into its code base. Usage::

    from app.verify import verify, VerificationError

    try:
        verify("crewpass", secret, request.headers, raw_body)
    except VerificationError as exc:
        return 401, str(exc)

*secrets* may be one secret or several (during a rotation, configure the old and the
new one; either verifies). Each signed header is checked, and for single-signature
contracts so is its ``…-Next`` companion, which carries the new secret's signature
while a rotation's grace period runs. Timestamps more than *tolerance* seconds from
now are refused. Errors: :class:`MissingHeader`, :class:`StaleTimestamp`,
:class:`BadSignature`, all subclasses of :class:`VerificationError`; whatever the
headers hold, no other exception comes out of checking them (a ``ValueError`` means
the call itself is wrong: an unknown contract, no secret, a malformed configured secret).

Contracts: ``crewpass``, ``crewship``, ``wallet-crew``, ``standard-webhooks`` (HMAC
signatures) and ``cr3dentials`` (a static credential in a header: pass
``auth_header=`` if it is not ``X-API-Key``). ``wallet-crew`` signs no timestamp, so
*tolerance* does not apply to it; dedupe on the body's ``__id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping

__all__ = ["BadSignature", "MissingHeader", "StaleTimestamp", "VerificationError", "verify"]

#: Unix seconds are ASCII digits; twelve reach the year 33658 and keep ``int()`` cheap.
MAX_TIMESTAMP_DIGITS = 12


class VerificationError(Exception):
    """The delivery could not be verified; do not trust its body."""


class MissingHeader(VerificationError):
    """A header the contract requires is absent."""


class StaleTimestamp(VerificationError):
    """The signed timestamp is malformed or too far from the receiver's clock."""


class BadSignature(VerificationError):
    """No configured secret produces the signature (or credential) received."""


def verify(
    contract: str,
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    raw_body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
    auth_header: str = "X-API-Key",
) -> None:
    """Raise :class:`VerificationError` unless *raw_body* and *headers* are a genuine delivery."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed")
    lowered = {name.lower(): value for name, value in headers.items()}
    clock = time.time() if now is None else now
    try:
        check = _CHECKS[contract]
    except KeyError:
        raise ValueError(f"unknown contract {contract!r}; known: {', '.join(sorted(_CHECKS))}") from None
    check(keys, lowered, raw_body, tolerance, clock, auth_header)


def _get(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if value is None:
        raise MissingHeader(f"missing header {name}")
    return value


def _timestamp(headers: Mapping[str, str], name: str, tolerance: int, now: float) -> str:
    text = _get(headers, name)
    # str.isdigit alone also takes '²' and '١', which int() refuses or reads.
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_TIMESTAMP_DIGITS):
        raise StaleTimestamp(f"{name} is not unix seconds")
    if abs(now - int(text)) > tolerance:
        raise StaleTimestamp(f"{name} is more than {tolerance} s from now")
    return text


def _hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _utf8(text: str) -> bytes | None:
    """*text* as UTF-8, or None if it cannot be (a lone surrogate): nothing signed it."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _any_match(received: Iterable[str], expected: Iterable[str]) -> bool:
    wanted = [encoded for encoded in map(_utf8, expected) if encoded is not None]
    found = False
    for given in map(_utf8, received):
        if given is None:
            continue
        for candidate in wanted:
            found |= hmac.compare_digest(given, candidate)
    return found


def _received(headers: Mapping[str, str], name: str) -> list[str]:
    """The documented header's value and, if present, its ``-next`` companion's."""
    values = [_get(headers, name)]
    companion = headers.get(name.lower() + "-next")
    if companion is not None:
        values.append(companion)
    return values


def _timestamped_hex(keys: list[str], headers: Mapping[str, str], body: bytes, tolerance: int,
                     now: float, *, timestamp: str, signature: str, prefix: str) -> None:
    """``<prefix><hex(hmac_sha256(secret, "{timestamp}." + body))>`` in *signature*."""
    ts = _timestamp(headers, timestamp, tolerance, now)
    expected = (prefix + _hex(k, ts.encode() + b"." + body) for k in keys)
    if not _any_match(_received(headers, signature), expected):
        raise BadSignature(f"{signature} does not match")


def _crewpass(keys: list[str], headers: Mapping[str, str], body: bytes, tolerance: int,
              now: float, _auth: str) -> None:
    _timestamped_hex(keys, headers, body, tolerance, now, timestamp="X-CrewPass-Timestamp",
                     signature="X-CrewPass-Signature", prefix="v1=")


def _crewship(keys: list[str], headers: Mapping[str, str], body: bytes, tolerance: int,
              now: float, _auth: str) -> None:
    _get(headers, "X-Crewship-Delivery")
    _timestamped_hex(keys, headers, body, tolerance, now, timestamp="X-Crewship-Timestamp",
                     signature="X-Crewship-Signature", prefix="sha256=")


def _wallet_crew(keys: list[str], headers: Mapping[str, str], body: bytes, _tolerance: int,
                 _now: float, _auth: str) -> None:
    expected = (_hex(k, body) for k in keys)
    if not _any_match(_received(headers, "x-neostore-signature"), expected):
        raise BadSignature("x-neostore-signature does not match")


def _cr3dentials(keys: list[str], headers: Mapping[str, str], _body: bytes, _tolerance: int,
                 _now: float, auth: str) -> None:
    if not _any_match(_received(headers, auth), keys):
        raise BadSignature(f"{auth} does not match")


def _standard_webhooks(keys: list[str], headers: Mapping[str, str], body: bytes,
                       tolerance: int, now: float, _auth: str) -> None:
    message_id = _get(headers, "webhook-id")
    ts = _timestamp(headers, "webhook-timestamp", tolerance, now)
    given = [part.split(",", 1)[1] for part in _get(headers, "webhook-signature").split()
             if part.startswith("v1,")]
    signed_id = _utf8(message_id)
    if signed_id is None:
        raise BadSignature("webhook-id is not text a signature can cover")
    message = signed_id + f".{ts}.".encode() + body
    expected = []
    for key in keys:
        try:
            raw = base64.b64decode(key.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a Standard Webhooks secret is whsec_ + base64") from None
        expected.append(base64.b64encode(hmac.new(raw, message, hashlib.sha256).digest()).decode())
    if not _any_match(given, expected):
        raise BadSignature("webhook-signature does not match")


_Check = Callable[[list[str], Mapping[str, str], bytes, int, float, str], None]
_CHECKS: dict[str, _Check] = {
    "crewpass": _crewpass,
    "crewship": _crewship,
    "wallet-crew": _wallet_crew,
    "cr3dentials": _cr3dentials,
    "standard-webhooks": _standard_webhooks,
}
