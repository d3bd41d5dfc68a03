"""What a wire contract is: data in, exact bytes and headers out.

A contract renders one attempt of one delivery. It is pure: the signing time and the
secrets are parameters, so the same inputs always give the same bytes (golden
vectors in ``docs/contracts/vectors.json`` pin them).

Secret rotation is expressed by :class:`SigningKeys`: the current secret and, during
a rotation's grace period, the previous one. Contracts whose signature header can
carry several signatures (Standard Webhooks) sign with both. The others keep the
documented header signed by the *previous* secret, which receivers already hold, and
add a ``…-Next`` header signed by the new one, until the grace period ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from app.errors import InvalidEndpointConfig


@dataclass(frozen=True, slots=True)
class EventView:
    """What a contract may see of an event: its public payload only."""

    id: str
    type: str
    tenant_id: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The secrets an attempt is signed with: the current one, plus the previous one
    while a rotation's grace period runs."""

    current: str
    previous: str | None = None

    @property
    def documented(self) -> str:
        """The secret behind a single-signature contract's documented header."""
        return self.previous if self.previous is not None else self.current

    @property
    def next(self) -> str | None:
        """The secret behind the ``…-Next`` header, only during a grace period."""
        return self.current if self.previous is not None else None


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """Per-attempt inputs: which delivery, signed when, with what."""

    delivery_id: str
    keys: SigningKeys
    timestamp: int
    auth_header: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """The exact body bytes and headers of one attempt."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Contract(Protocol):
    """A wire format: renders attempts, makes and checks secrets."""

    name: str
    description: str
    #: Header names (lower case) the contract owns; static headers may not replace them.
    reserved_headers: frozenset[str]

    def render(self, event: EventView, context: AttemptContext) -> RenderedRequest: ...

    def generate_secret(self) -> str: ...

    def validate_secret(self, secret: str) -> None: ...


#: Headers no endpoint configuration may set: the transport or HTTP owns them.
TRANSPORT_HEADERS = frozenset({
    "content-type", "content-length", "host", "user-agent", "transfer-encoding",
    "connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
    "expect",
})
#: An RFC 7230 token of 1 to 100 characters (matched whole: ``$`` would let a final newline by).
HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
MAX_STATIC_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 1024
#: What a header value may hold: visible ASCII, space, and Latin-1 beyond the C1 controls.
#: HTTP sends header values as Latin-1 bytes, so anything outside it cannot be sent at all.
HEADER_VALUE_RE = re.compile(r"[\x20-\x7e\xa0-\xff]*")
SECRET_RE = re.compile(r"[\x21-\x7e]{16,200}")


def canonical_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, keys in the order given: the bytes that get signed."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def iso_utc_seconds(moment: datetime) -> str:
    """``2026-06-08T10:00:00Z``: UTC, whole seconds, as the seeds' envelopes show."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_millis(moment: datetime) -> str:
    """``2025-03-24T12:05:00.000Z``: UTC with milliseconds, as JavaScript prints dates."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def next_header(name: str) -> str:
    """The companion header that carries the new secret's signature during a rotation
    (``X-CrewPass-Signature-Next``; all lower case for a lower-case name)."""
    return f"{name}-next" if name.islower() else f"{name}-Next"


def signed_headers(name: str, keys: SigningKeys, sign: Callable[[str], str]) -> dict[str, str]:
    """A single-signature contract's signature header and, during a rotation, its
    ``…-Next`` companion: *sign* maps a secret to the header value."""
    headers = {name: sign(keys.documented)}
    if keys.next is not None:
        headers[next_header(name)] = sign(keys.next)
    return headers


def validate_printable_secret(secret: str) -> None:
    """A user-supplied secret: 16 to 200 visible ASCII characters, no spaces."""
    if not isinstance(secret, str) or not SECRET_RE.fullmatch(secret):
        raise InvalidEndpointConfig(
            "secret must be 16 to 200 visible ASCII characters (no spaces or control characters)"
        )


def validate_header_name(name: str, *, reserved: frozenset[str] = frozenset()) -> None:
    """A header name: an RFC 7230 token, not one Hookline or the contract sets."""
    if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
        raise InvalidEndpointConfig(
            f"invalid header name {name!r}: use 1 to 100 letters, digits or !#$%&'*+-.^_`|~")
    lowered = name.lower()
    if lowered in TRANSPORT_HEADERS or lowered in reserved or (lowered.endswith("-next") and (
        lowered[: -len("-next")] in reserved
    )):
        raise InvalidEndpointConfig(f"header {name!r} is set by Hookline and cannot be configured")


def validate_header_value(name: str, value: str) -> None:
    """A header value HTTP can carry as it is: Latin-1, no control characters, not padded."""
    if not isinstance(value, str):
        raise InvalidEndpointConfig(f"header {name!r}: value must be a string")
    if len(value) > MAX_HEADER_VALUE_LENGTH:
        raise InvalidEndpointConfig(
            f"header {name!r}: value longer than {MAX_HEADER_VALUE_LENGTH} characters")
    if not HEADER_VALUE_RE.fullmatch(value):
        bad = next(ch for ch in value if not HEADER_VALUE_RE.fullmatch(ch))
        if ord(bad) > 0xFF:
            raise InvalidEndpointConfig(
                f"header {name!r}: value has {bad!a}, which is not Latin-1; "
                "HTTP header values cannot carry it")
        raise InvalidEndpointConfig(
            f"header {name!r}: value has the control character {bad!a}; "
            "line breaks, NUL and other control characters are not allowed")
    if value != value.strip():
        raise InvalidEndpointConfig(f"header {name!r}: value has surrounding whitespace")


def validate_static_headers(
    headers: Mapping[str, str] | None, reserved: frozenset[str]
) -> dict[str, str]:
    """Static extra headers as stored: valid names and values, none owned by Hookline."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidEndpointConfig("headers must be an object of name → value")
    if len(headers) > MAX_STATIC_HEADERS:
        raise InvalidEndpointConfig(f"at most {MAX_STATIC_HEADERS} static headers")
    seen: set[str] = set()
    for name, value in headers.items():
        validate_header_name(name, reserved=reserved)
        validate_header_value(name, value)
        if name.lower() in seen:
            raise InvalidEndpointConfig(f"header {name!r} given twice")
        seen.add(name.lower())
    return dict(headers)


def with_static_headers(rendered: RenderedRequest, static: Mapping[str, str]) -> RenderedRequest:
    """The rendered request plus the endpoint's static headers (the contract's win)."""
    if not static:
        return rendered
    owned = {name.lower() for name in rendered.headers}
    merged = dict(rendered.headers)
    for name, value in static.items():
        if name.lower() not in owned:
            merged[name] = value
    return RenderedRequest(body=rendered.body, headers=merged)
