"""Polling watchers: events from tables and queries Hookline does not write.

A :class:`PollingWatch` names a table or query, its unique ``key`` column, the watched
``columns`` (a change in any of them emits; other columns never do), the payload
allow-list and the recipients, like an ORM :class:`~app.changefeed.rules.Watch`.
Two ways to find what changed:

* **digest, full scan** (no ``cursor``): every pass reads the whole table in key
  order, a page at a time, and compares a digest of the watched columns per row with
  the one stored in ``watcher_rows``. Finds inserts and changes whatever writes them.
* **cursor** (``cursor="updated_at"``, a version column or a serial id): each pass
  reads only rows past the stored ``(cursor, key)``; with ``track_changes`` (the
  default) digests still decide whether a watched column changed and whether it is
  an insert or an update. With ``track_changes=False`` (append-only feeds such as an
  audit table) every new row is an insert and nothing is stored per row.
  The cursor must grow in commit order: a value committed *below* a position already
  passed (``updated_at`` set at the start of a long transaction that commits later)
  is never read. When writers cannot promise that, use the full scan.

Every page is one Hookline transaction that writes the outbox rows, the digests and
the new position together, so a watcher killed anywhere resumes exactly where its
last page committed: no replay, no gap. Pages are serialised per watcher (the
position row is locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the
database's single writer), so several producers may run the same watchers.

By default the first pass only records what exists (``backfill=False``); set
``backfill=True`` to emit inserts for rows that were there before the watcher
started. Deletes are not detected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    FromClause,
    Select,
    TextualSelect,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue
from app.changefeed.detection import Position, RowChange, Seen, advance, detect, key_text
from app.changefeed.models import WatcherPosition, WatcherRow
from app.changefeed.outbox import OutboxRecord, records_for, write_records
from app.changefeed.rules import Operation, Rule, make_change, tenants_of
from app.db import transaction
from app.errors import InvalidPayload, InvalidWatch
from app.ids import new_id
from app.models import utcnow

log = logging.getLogger(__name__)

#: Pages one :meth:`PollingWatcher.poll` call reads at most, so one watcher cannot hold a producer.
MAX_PAGES_PER_POLL = 50
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, kw_only=True)
class PollingWatch(Rule):
    """A table or query to poll; see the module docstring. ``on`` defaults to insert and update.

    ``query`` is a :class:`~sqlalchemy.Table` (or any FROM clause), a ``select()``, or
    ``text(…).columns(…)``; ``recipients(session, row)`` gets the row as a mapping of
    every selected column. ``source`` is the engine to read from when the data lives
    in another database (default: Hookline's own).
    """

    name: str
    query: FromClause | Select[Any] | TextualSelect
    key: str
    columns: Sequence[str] = ()
    cursor: str | None = None
    track_changes: bool = True
    backfill: bool = False
    interval: float = 5.0
    batch: int = 500
    source: Engine | None = None
    #: The query as a FROM clause, with ``.c`` to reach its columns.
    selectable: FromClause = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.on is None and isinstance(self.event_type, str):
            object.__setattr__(self, "on", ("insert", "update") if self.track_changes else ("insert",))
        super().__post_init__()
        if not self.name or len(self.name) > MAX_NAME_LENGTH:
            raise InvalidWatch(f"a polling watch needs a name of 1 to {MAX_NAME_LENGTH} characters")
        if self.interval <= 0 or self.batch < 1:
            raise InvalidWatch(f"{self.name}: interval must be positive and batch at least 1")
        if not self.track_changes and (self.cursor is None or "update" in self.event_types):
            raise InvalidWatch(f"{self.name}: track_changes=False needs a cursor and emits inserts only")
        selectable = (self.query.subquery(self.name) if isinstance(self.query, Select | TextualSelect)
                      else self.query)
        object.__setattr__(self, "selectable", selectable)
        available = set(selectable.c.keys())
        needed = {self.key, *self.columns, *self.field_map.values()}
        if self.cursor is not None:
            needed.add(self.cursor)
        missing = sorted(needed - available)
        if missing:
            raise InvalidWatch(f"{self.name}: the query has no column(s) {', '.join(missing)}")

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @property
    def source_name(self) -> str:
        return f"poll:{self.name}"


@dataclass(slots=True)
class PollReport:
    """What one :meth:`PollingWatcher.poll` call did."""

    pages: int = 0
    rows: int = 0
    emitted: int = 0
    caught_up: bool = False
    #: Another producer held this watcher's position; nothing was read.
    busy: bool = False


class PollingWatcher:
    """Runs one :class:`PollingWatch` against Hookline's database."""

    def __init__(self, watch: PollingWatch, sessions: sessionmaker[Session], catalogue: Catalogue, *,
                 max_payload_bytes: int, clock: Callable[[], datetime] = utcnow,
                 id_factory: Callable[[str], str] = new_id) -> None:
        for name in watch.event_types.values():
            catalogue.require(name)
        self.watch = watch
        self.sessions = sessions
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock
        self.id_factory = id_factory

    @property
    def name(self) -> str:
        return self.watch.name

    def poll(self, max_pages: int = MAX_PAGES_PER_POLL) -> PollReport:
        """Read pages until caught up (or *max_pages*); each page commits on its own."""
        self._ensure_position()
        report = PollReport()
        for _ in range(max_pages):
            page = self._page()
            if page is None:
                report.busy = True
                return report
            rows, emitted, caught_up = page
            report.pages += 1
            report.rows += rows
            report.emitted += emitted
            if caught_up:
                report.caught_up = True
                break
        return report

    def position(self) -> Position:
        with transaction(self.sessions) as session:
            stored = session.get(WatcherPosition, self.watch.name)
            return Position.from_json(stored.position if stored else None)

    # -- one page, one transaction ---------------------------------------------------
    def _page(self) -> tuple[int, int, bool] | None:
        watch = self.watch
        now = self.clock()
        with transaction(self.sessions) as session:
            position = self._lock(session, now)
            if position is None:
                return None
            rows = self._read(session, position)
            stored = self._stored(session, rows) if watch.track_changes else {}
            changes = detect(rows, key=watch.key, columns=watch.columns, stored=stored,
                             track=watch.track_changes)
            records: list[OutboxRecord] = []
            if position.primed or watch.backfill:
                for change in changes:
                    records += self._records(session, change, now)
            if watch.track_changes:
                self._store(session, changes, stored, now)
            following = advance(position, rows, key=watch.key, cursor=watch.cursor,
                                page_size=watch.batch)
            session.execute(update(WatcherPosition).where(WatcherPosition.name == watch.name)
                            .values(position=following.to_json(), updated_at=now)
                            .execution_options(synchronize_session=False))
            write_records(session.connection(), records, now=now)
        if records or not position.primed:
            log.info("watcher %s: %d row(s) read, %d event(s)%s", watch.name, len(rows), len(records),
                     "" if position.primed or watch.backfill else " (first pass: recorded only)")
        return len(rows), len(records), len(rows) < watch.batch

    def _ensure_position(self) -> None:
        with transaction(self.sessions) as session:
            if session.get(WatcherPosition, self.watch.name) is not None:
                return
        try:
            with transaction(self.sessions) as session:
                session.execute(insert(WatcherPosition).values(
                    name=self.watch.name, position=Position().to_json(), updated_at=self.clock()))
        except IntegrityError:
            pass  # another producer created it first

    def _lock(self, session: Session, now: datetime) -> Position | None:
        """This watcher's position, locked for the transaction; ``None`` if another producer holds it."""
        statement = select(WatcherPosition.position).where(WatcherPosition.name == self.watch.name)
        if session.connection().dialect.name == "sqlite":
            # A write first takes SQLite's single write lock, so the position read is current.
            session.execute(update(WatcherPosition).where(WatcherPosition.name == self.watch.name)
                            .values(updated_at=now).execution_options(synchronize_session=False))
        row = session.execute(statement.with_for_update(skip_locked=True)).first()
        return None if row is None else Position.from_json(row[0])

    def _read(self, session: Session, position: Position) -> list[dict[str, Any]]:
        watch = self.watch
        source = watch.selectable
        key = source.c[watch.key]
        query = select(source)
        if watch.cursor is not None:
            cursor = source.c[watch.cursor]
            query = query.where(cursor.is_not(None))
            if position.cursor is not None:
                query = query.where(or_(cursor > position.cursor,
                                        and_(cursor == position.cursor, key > position.key)))
            query = query.order_by(cursor, key)
        else:
            if position.key is not None:
                query = query.where(key > position.key)
            query = query.order_by(key)
        query = query.limit(watch.batch)
        if watch.source is None:
            return _rows(session.connection(), query)
        with watch.source.connect() as connection:
            return _rows(connection, query)

    def _stored(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> dict[str, Seen]:
        if not rows:
            return {}
        keys = list({key_text(row[self.watch.key]) for row in rows})
        found = session.execute(select(WatcherRow.row_key, WatcherRow.digest, WatcherRow.watched)
                                .where(WatcherRow.watcher == self.watch.name,
                                       WatcherRow.row_key.in_(keys))).all()
        return {row_key: Seen(digest_, watched) for row_key, digest_, watched in found}

    def _store(self, session: Session, changes: Sequence[RowChange], stored: Mapping[str, Seen],
               now: datetime) -> None:
        latest: dict[str, RowChange] = {change.key_text: change for change in changes}
        fresh = [{"watcher": self.watch.name, "row_key": k, "digest": c.digest,
                  "watched": dict(c.new), "updated_at": now}
                 for k, c in latest.items() if k not in stored]
        changed = [{"watcher": self.watch.name, "row_key": k, "digest": c.digest,
                    "watched": dict(c.new), "updated_at": now}
                   for k, c in latest.items() if k in stored]
        if fresh:
            session.execute(insert(WatcherRow), fresh)
        if changed:
            session.execute(update(WatcherRow), changed)

    def _records(self, session: Session, found: RowChange, now: datetime) -> list[OutboxRecord]:
        watch = self.watch
        operation: Operation = found.operation
        if operation not in watch.event_types:
            return []
        values = {name: found.row[column] for name, column in watch.field_map.items()}
        try:
            change = make_change(operation, watch.source_name, watched=watch.columns, values=values,
                                 old=found.old, new=found.new)
        except TypeError as exc:
            raise InvalidPayload(f"{watch.source_name}: {exc}") from None
        if change is None:
            return []
        emission = watch.emission(change)
        if emission is None:
            return []
        tenants = tenants_of(watch.recipients, session, found.row)
        return records_for(emission, tenants, source=watch.source_name, now=now,
                           max_payload_bytes=self.max_payload_bytes, id_factory=self.id_factory)


def _rows(connection: Connection, query: Select[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in connection.execute(query)]
