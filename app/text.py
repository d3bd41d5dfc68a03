"""Text Hookline can store and send: valid Unicode without NUL or control characters. Pure.

PostgreSQL text refuses NUL, and a lone surrogate (``\\ud800``, which a command line
hands over for bytes that are not UTF-8) has no UTF-8 form at all: either one reaching
the database would fail the write with a driver error instead of a clear refusal.
"""

from __future__ import annotations

import re

__all__ = ["text_problem"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = re.compile("\x00")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def text_problem(value: str, *, allow_controls: bool = False) -> str | None:
    """Why *value* cannot be stored, or None. A lone surrogate and NUL never can be; other
    control characters (a line break) only where *allow_controls* lets free text have them."""
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        return f"has the lone surrogate {surrogate.group()!a}, which is not Unicode text"
    control = (_NUL if allow_controls else _CONTROL).search(value)
    if control is not None:
        return f"has the control character {control.group()!a}"
    return None
