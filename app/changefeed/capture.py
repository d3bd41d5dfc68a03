"""Change capture: watched ORM changes become outbox rows in the transaction that makes them.

A :class:`ChangeFeed` holds an application's watches and hooks into its sessions
(``feed.install(SessionFactory)``). After every flush it looks at the flushed
objects of watched models and, for each change a watch accepts, writes one outbox row
per recipient on the session's own connection. So the event and the change commit
together or not at all: a rolled-back change emits nothing, a committed one is never
missed, and an unwatched change emits nothing.

What it sees: inserts, updates and deletes made through the ORM unit of work
(``session.add``, attribute changes, ``session.delete``), once per flush. Not seen:
bulk ``update()``/``delete()`` statements, raw SQL, in-place mutation of a JSON
value, and rows removed by a database ``ON DELETE CASCADE``; watch those with a
polling watcher (:mod:`app.changefeed.polling`).

Why ``after_flush``: the rows are written by then (so generated keys are known and a
``recipients`` query sees them), while the attribute history still holds the old
values. Deleted objects' values are loaded in ``before_flush``, while their row exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, Session

from app.catalogue import Catalogue
from app.changefeed.outbox import OutboxRecord, records_for, write_records
from app.changefeed.rules import (
    Change,
    Condition,
    Operation,
    PayloadBuilder,
    Recipients,
    Watch,
    make_change,
    tenants_of,
)
from app.errors import InvalidPayload, InvalidWatch
from app.ids import new_id
from app.models import utcnow

if TYPE_CHECKING:
    from app.client import Hookline


def _keep_old_value(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
    """A no-op ``set`` listener; registered with ``active_history`` so the old value is loaded."""


class ChangeFeed:
    """An application's watches, and the session hooks that turn watched changes into outbox rows.

    ::

        feed = ChangeFeed.for_hookline(hookline)
        feed.watch(Crew, attributes=["status"], event_type="crew.status.changed",
                   fields={"crew_id": "id", "name": "name"},
                   recipients=lambda session, crew: partner_ids(session, crew.id))
        feed.install(Session)   # a sessionmaker, Session class, scoped_session or one session
    """

    def __init__(self, catalogue: Catalogue, *, max_payload_bytes: int,
                 clock: Callable[[], datetime] = utcnow,
                 id_factory: Callable[[str], str] = new_id) -> None:
        self.catalogue = catalogue
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock
        self.id_factory = id_factory
        self._watches: list[Watch] = []
        self._by_class: dict[type[Any], list[Watch]] = {}

    @classmethod
    def for_hookline(cls, hookline: Hookline) -> ChangeFeed:
        """A feed using *hookline*'s event catalogue and payload size limit."""
        return cls(hookline.catalogue, max_payload_bytes=hookline.settings.max_payload_bytes)

    @property
    def watches(self) -> tuple[Watch, ...]:
        return tuple(self._watches)

    # -- declaring -------------------------------------------------------------------
    def watch(self, model: type[Any], *, event_type: str | Mapping[str, str], recipients: Recipients,
              attributes: Sequence[str] = (), fields: Sequence[str] | Mapping[str, str] = (),
              on: Sequence[Operation] | None = None, when: Condition | None = None,
              payload: PayloadBuilder | None = None) -> Watch:
        """Watch *model*: see :class:`~app.changefeed.rules.Watch` for the arguments."""
        return self.add(Watch(model=model, event_type=event_type, recipients=recipients,
                              attributes=attributes, fields=fields, on=on, when=when,
                              payload=payload))

    def add(self, watch: Watch) -> Watch:
        """Register *watch* after checking it against the catalogue and the model's mapping.

        Raises ``UnknownEventType``/``InvalidEventType`` for an event type the catalogue
        does not have, ``InvalidWatch`` for an unmapped model, a watched attribute that
        is not a column, or a field the model does not have.
        """
        for name in watch.event_types.values():
            self.catalogue.require(name)
        mapper = sa_inspect(watch.model, raiseerr=False)
        if not isinstance(mapper, Mapper):
            raise InvalidWatch(f"{watch.model!r} is not a mapped ORM class")
        columns = set(mapper.column_attrs.keys())
        for attribute in watch.watched:
            if attribute not in columns:
                raise InvalidWatch(f"{watch.model.__name__}.{attribute} is not a column attribute; "
                                   "only columns can be watched")
        for attribute in watch.field_map.values():
            if not hasattr(watch.model, attribute):
                raise InvalidWatch(f"{watch.model.__name__} has no attribute {attribute!r}")
        for attribute in watch.watched:
            descriptor = getattr(watch.model, attribute)
            if not event.contains(descriptor, "set", _keep_old_value):
                event.listen(descriptor, "set", _keep_old_value, active_history=True)
        self._watches.append(watch)
        self._by_class.clear()
        return watch

    # -- hooking into sessions -------------------------------------------------------
    def install(self, target: Any) -> None:
        """Capture changes flushed by sessions of *target* (idempotent)."""
        if not event.contains(target, "after_flush", self._after_flush):
            event.listen(target, "before_flush", self._before_flush)
            event.listen(target, "after_flush", self._after_flush)

    def uninstall(self, target: Any) -> None:
        if event.contains(target, "after_flush", self._after_flush):
            event.remove(target, "before_flush", self._before_flush)
            event.remove(target, "after_flush", self._after_flush)

    # -- the hooks -------------------------------------------------------------------
    def _before_flush(self, session: Session, _flush_context: Any, _instances: Any) -> None:
        for obj in list(session.deleted):
            for watch in self._watches_for(type(obj)):
                if "delete" in watch.event_types:
                    for attribute in (*watch.watched, *watch.field_map.values()):
                        getattr(obj, attribute)

    def _after_flush(self, session: Session, _flush_context: Any) -> None:
        if not self._watches:
            return
        now = self.clock()
        records = self.collect(session, now)
        write_records(session.connection(), records, now=now)

    def collect(self, session: Session, now: datetime) -> list[OutboxRecord]:
        """The outbox records for the changes *session* is flushing (called from ``after_flush``)."""
        records: list[OutboxRecord] = []
        batches: tuple[tuple[Operation, Any], ...] = (
            ("insert", session.new), ("update", session.dirty), ("delete", session.deleted))
        for operation, objects in batches:
            for obj in list(objects):
                for watch in self._watches_for(type(obj)):
                    if operation in watch.event_types:
                        records += self._records(session, watch, operation, obj, now)
        return records

    def _records(self, session: Session, watch: Watch, operation: Operation, obj: Any,
                 now: datetime) -> list[OutboxRecord]:
        try:
            change = _change_of(watch, operation, obj)
        except TypeError as exc:
            raise InvalidPayload(f"{watch.source}: {exc}") from None
        if change is None:
            return []
        emission = watch.emission(change)
        if emission is None:
            return []
        tenants = tenants_of(watch.recipients, session, obj)
        return records_for(emission, tenants, source=watch.source, now=now,
                           max_payload_bytes=self.max_payload_bytes, id_factory=self.id_factory)

    def _watches_for(self, cls: type[Any]) -> list[Watch]:
        found = self._by_class.get(cls)
        if found is None:
            found = [w for w in self._watches if issubclass(cls, w.model)]
            self._by_class[cls] = found
        return found


def _change_of(watch: Watch, operation: Operation, obj: Any) -> Change | None:
    """The :class:`~app.changefeed.rules.Change` of *obj* for *watch*, from its attribute history."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    if operation == "update":
        state = sa_inspect(obj)
        for attribute in watch.watched:
            history = state.attrs[attribute].history
            if history.has_changes():
                old[attribute] = history.deleted[0] if history.deleted else None
                new[attribute] = history.added[0] if history.added else None
        if not new:
            return None
    else:
        current = {attribute: getattr(obj, attribute) for attribute in watch.watched}
        if operation == "insert":
            new = current
        else:
            old = current
    values = {key: getattr(obj, attribute) for key, attribute in watch.field_map.items()}
    return make_change(operation, watch.source, watched=watch.watched, values=values,
                       old=old, new=new)
