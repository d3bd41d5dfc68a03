"""How deeply a JSON value nests, measured without recursion, and the limit on it. Pure.

Every way data comes in (``POST /hooks/{token}``, ``POST /api/{tenant}/events``, a
producer's ``publish()``) refuses a document nested deeper than :data:`MAX_JSON_DEPTH`
before anything walks it recursively: the JSON encoder, a payload check or the
delivery-time hygiene would otherwise run out of stack a few hundred levels down, and
the caller would see a server error instead of a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "json_depth"]

#: Far deeper than any real event; far shallower than the interpreter's recursion limit.
MAX_JSON_DEPTH = 64


def json_depth(value: Any, *, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply *value*'s objects and arrays nest: 0 for a scalar, 1 for ``{}`` or ``[]``.

    The walk stops one level past *limit*, so the answer is exact up to ``limit + 1``
    and the cost is bounded by the size of the first ``limit + 1`` levels.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if level <= limit:
            stack.extend((child, level + 1) for child in children)
    return deepest
