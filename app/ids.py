"""Identifiers: a type prefix and a time-ordered random part (``evt_01J…``).

Time-ordered ids keep B-tree inserts local and sort deliveries by creation.
"""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, *, now_ms: int | None = None, randomness: int | None = None) -> str:
    """A ULID-shaped id: 48 bits of milliseconds then 80 random bits, with a prefix."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rnd = secrets.randbits(80) if randomness is None else randomness
    return f"{prefix}_{_base32(ms, 10)}{_base32(rnd, 16)}"
