"""What a polling watcher concludes from one page of rows: inserts, changes, and where to resume.

Pure. A row whose key has no stored digest is an insert; a row whose digest of the
watched columns differs from the stored one is an update (the stored values are the
"old" side); an equal digest is no change, whatever other columns did. The
:class:`Position` says where the next page starts: after ``(cursor, key)`` in cursor
mode, after ``key`` within the current pass in full-scan mode (a short page ends the
pass and the next one starts from the beginning).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.changefeed.values import canonical, digest, jsonable, tag, untag


@dataclass(frozen=True, slots=True)
class Seen:
    """A row as the watcher last stored it."""

    digest: str
    watched: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowChange:
    """A detected insert or change of one row."""

    row: Mapping[str, Any]
    key_text: str
    operation: Literal["insert", "update"]
    #: The watched columns' stored (old) values; ``None`` for an insert.
    old: Mapping[str, Any] | None
    #: The watched columns' current values, JSON-ready.
    new: Mapping[str, Any]
    digest: str


def key_text(value: Any) -> str:
    """A row key as stored in ``watcher_rows.row_key``."""
    return canonical(value)


def detect(rows: Sequence[Mapping[str, Any]], *, key: str, columns: Sequence[str],
           stored: Mapping[str, Seen], track: bool = True) -> list[RowChange]:
    """The inserts and watched-column changes among *rows*, given the *stored* digests.

    With *track* false (an append-only feed) every row is an insert. A key that
    appears twice in *rows* is compared with its own earlier occurrence.
    """
    seen = dict(stored)
    found: list[RowChange] = []
    for row in rows:
        watched = {column: jsonable(row[column]) for column in columns}
        current = digest(watched)
        text = key_text(row[key])
        previous = seen.get(text) if track else None
        if previous is None:
            found.append(RowChange(row, text, "insert", None, watched, current))
        elif previous.digest != current:
            found.append(RowChange(row, text, "update", previous.watched, watched, current))
        seen[text] = Seen(current, watched)
    return found


@dataclass(frozen=True, slots=True)
class Position:
    """Where a watcher resumes; ``primed`` once its first full pass is done."""

    cursor: Any = None
    key: Any = None
    primed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"cursor": tag(self.cursor), "key": tag(self.key), "primed": self.primed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Position:
        if not data:
            return cls()
        return cls(cursor=untag(data.get("cursor")), key=untag(data.get("key")),
                   primed=bool(data.get("primed")))


def advance(position: Position, rows: Sequence[Mapping[str, Any]], *, key: str,
            cursor: str | None, page_size: int) -> Position:
    """The position after reading *rows* (a page of at most *page_size*) from *position*."""
    full = len(rows) >= page_size
    if cursor is not None:
        if not rows:
            return Position(position.cursor, position.key, primed=True)
        last = rows[-1]
        return Position(last[cursor], last[key], primed=position.primed or not full)
    if full:
        return Position(None, rows[-1][key], primed=position.primed)
    return Position(None, None, primed=True)
