"""Ordering keys and sequence numbers, given at publish.

An event may name the entity it is about: its *ordering key*, given by the caller
(``orderingKey``) or read from the field its event type declares in the catalogue
(CrewPass: ``crew_unique_id``). An event with a key gets the next *sequence* number of
its tenant and key (1, 2, 3…), in the same transaction that writes it: one multi-row
upsert of ``ordering_sequences`` … ``RETURNING`` per publish, whose row locks make
concurrent publishers of one key take their numbers in commit order. Every delivery
of the event carries both (``X-Hookline-Sequence``, ``X-Hookline-Ordering-Key``), so a
receiver can see reordering and gaps.

An endpoint with ``ordering = key`` also gets them on its deliveries
(``deliveries.ordering_key`` and ``position`` = the sequence): the engine then sends a
key's deliveries to that endpoint one at a time (:mod:`app.engine.ordering`). An event
without a key costs nothing here: no statement, no column written but NULLs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.errors import InvalidOrderingKey
from app.models import Ordering, OrderingSequence

#: Longest ordering key, in characters (the column's width).
MAX_ORDERING_KEY_LENGTH = 200


def check_ordering_key(key: Any) -> str:
    """*key* if it is a usable ordering key: 1 to 200 characters, no NUL, no lone surrogate."""
    if not isinstance(key, str):
        raise InvalidOrderingKey("ordering key must be a string")
    if not 0 < len(key) <= MAX_ORDERING_KEY_LENGTH:
        raise InvalidOrderingKey(
            f"ordering key must be 1 to {MAX_ORDERING_KEY_LENGTH} characters")
    if "\x00" in key:
        raise InvalidOrderingKey("ordering key may not contain NUL")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOrderingKey("ordering key may not contain lone surrogates") from None
    return key


def implied_ordering_key(field_name: str | None, payload: Mapping[str, Any]) -> str | None:
    """The key an event type reads from its data: the declared field's value as text.

    An event whose data lacks the field (or holds no string or integer there) has no key:
    it is delivered unordered and without a sequence, as before the field was declared.
    """
    if field_name is None:
        return None
    value = payload.get(field_name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return check_ordering_key(str(value))


def resolve_ordering_key(given: Any, field_name: str | None,
                         payload: Mapping[str, Any]) -> str | None:
    """The caller's key if given (checked), else the one the event type implies."""
    if given is not None:
        return check_ordering_key(given)
    return implied_ordering_key(field_name, payload)


def check_ordering(value: Any) -> str:
    """An endpoint's ``ordering`` setting: ``none`` or ``key``."""
    try:
        return Ordering(value).value
    except ValueError:
        known = ", ".join(o.value for o in Ordering)
        raise InvalidOrderingKey(f"ordering must be one of: {known}") from None


def next_sequences(conn: Connection, tenant_id: str, keys: Sequence[str]) -> dict[str, list[int]]:
    """The next sequence numbers of *tenant_id* for *keys* (a key may repeat: one number
    per occurrence, in order), taken inside the caller's transaction with one statement.

    The counters are upserted in key order, so two publishers that share keys lock them
    in the same order and never deadlock; each holds its keys' rows until it commits,
    which is why a key's numbers follow its events' commit order.
    """
    if not keys:
        return {}
    counts = Counter(keys)
    rows = [{"tenant_id": tenant_id, "ordering_key": key, "last_sequence": counts[key]}
            for key in sorted(counts)]
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    values = dialect_insert(OrderingSequence).values(rows)
    statement = values.on_conflict_do_update(
        index_elements=[OrderingSequence.tenant_id, OrderingSequence.ordering_key],
        set_={"last_sequence": OrderingSequence.last_sequence
              + values.excluded.last_sequence},
    ).returning(OrderingSequence.ordering_key, OrderingSequence.last_sequence)
    last = {str(key): int(value) for key, value in conn.execute(statement)}
    return {key: list(range(last[key] - n + 1, last[key] + 1)) for key, n in counts.items()}


def assign(keys: Sequence[str | None], sequences: Mapping[str, list[int]]) -> list[int | None]:
    """Each occurrence's number, in order (None where there is no key)."""
    taken: dict[str, int] = {}
    out: list[int | None] = []
    for key in keys:
        if key is None:
            out.append(None)
            continue
        n = taken.get(key, 0)
        out.append(sequences[key][n])
        taken[key] = n + 1
    return out
