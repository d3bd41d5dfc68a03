"""Watch rules: what a change must look like to emit an event, and the payload it carries.

Pure. A rule names the event type per operation (``insert``, ``update``, ``delete``),
the watched attributes (an update emits only when one of them changed value), an
allow-list of fields copied into the payload, who receives it (``recipients``), an
optional condition (``when``) and an optional payload builder. Two declarations use
it: :class:`Watch` for ORM models (captured in the writing transaction,
:mod:`app.changefeed.capture`) and :class:`~app.changefeed.polling.PollingWatch` for
tables Hookline does not write.

The default payload is the allow-listed fields plus the watched values::

    {"crew_id": "crw_1", "name": "Ada", "changes": {"status": {"old": "pending", "new": "verified"}}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sqlalchemy.orm import Session

from app.catalogue import check_event_type_syntax
from app.changefeed.values import jsonable
from app.errors import InvalidEventType, InvalidWatch

Operation = Literal["insert", "update", "delete"]
OPERATIONS: tuple[Operation, ...] = get_args(Operation)

#: The default payload's key for the watched values, ``{attr: {"old": …, "new": …}}``.
CHANGES_KEY = "changes"

#: ``recipients(session, subject) -> tenant ids`` (or names). The subject is the ORM
#: object for a :class:`Watch`, the row as a mapping for a polling watch. It runs
#: inside the writing transaction and may query; no recipient means no event.
RecipientsFn = Callable[[Session, Any], Iterable[str]]
Recipients = RecipientsFn | Sequence[str]
Condition = Callable[["Change"], bool]
PayloadBuilder = Callable[["Change"], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a watched row, in JSON-ready values: what a payload is built from.

    ``values`` holds the allow-listed fields under their payload names (for a delete,
    the last values); ``changes`` maps each watched attribute to ``(old, new)``: every
    watched attribute on insert (old ``None``) and delete (new ``None``), only those
    whose value changed on update.
    """

    operation: Operation
    source: str
    values: Mapping[str, Any]
    changes: Mapping[str, tuple[Any, Any]]

    def old(self, name: str) -> Any:
        return self.changes[name][0] if name in self.changes else None

    def new(self, name: str) -> Any:
        return self.changes[name][1] if name in self.changes else None


@dataclass(frozen=True, slots=True)
class Emission:
    """What one rule emits for one change, before it is addressed to recipients."""

    event_type: str
    payload: dict[str, Any]


def default_payload(change: Change) -> dict[str, Any]:
    """The allow-listed values plus ``changes: {attr: {"old": …, "new": …}}``."""
    payload = dict(change.values)
    payload[CHANGES_KEY] = {name: {"old": old, "new": new}
                            for name, (old, new) in change.changes.items()}
    return payload


def make_change(operation: Operation, source: str, *, watched: Sequence[str],
                values: Mapping[str, Any], old: Mapping[str, Any] | None = None,
                new: Mapping[str, Any] | None = None) -> Change | None:
    """The :class:`Change` for *operation*, or ``None`` for an update that changed no watched value.

    *old* and *new* hold the watched attributes' values before and after (raw values:
    they are made JSON-ready here, and an update whose values are equal once
    JSON-ready is no change). ``TypeError`` if a value has no JSON form.
    """
    before = old or {}
    after = new or {}
    changes: dict[str, tuple[Any, Any]] = {}
    for name in watched:
        was = jsonable(before.get(name)) if operation != "insert" else None
        now = jsonable(after.get(name)) if operation != "delete" else None
        if operation != "update" or was != now:
            changes[name] = (was, now)
    if operation == "update" and not changes:
        return None
    return Change(operation=operation, source=source,
                  values={key: jsonable(value) for key, value in values.items()}, changes=changes)


def tenants_of(recipients: Recipients, session: Session, subject: Any) -> list[str]:
    """The distinct tenant refs *recipients* names for *subject*, in the order given."""
    named = recipients(session, subject) if callable(recipients) else recipients
    if isinstance(named, str):
        raise TypeError(f"recipients returned the string {named!r}; return a list of tenant ids")
    seen: dict[str, None] = {}
    for ref in named:
        if not isinstance(ref, str) or not ref:
            raise TypeError(f"recipients must name tenants by non-empty id or name, not {ref!r}")
        seen.setdefault(ref, None)
    return list(seen)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What both declarations share: event types, allow-list, recipients, condition, payload.

    ``event_type`` is one name for every operation in ``on`` (default ``("update",)``),
    or a mapping ``{operation: event type}`` (then ``on`` is its keys). ``fields`` is a
    list of attribute names, or a mapping ``{payload name: attribute name}``.
    """

    event_type: str | Mapping[str, str]
    recipients: Recipients
    fields: Sequence[str] | Mapping[str, str] = ()
    on: Sequence[Operation] | None = None
    when: Condition | None = None
    payload: PayloadBuilder | None = None
    #: ``{operation: event type}``, from ``event_type`` and ``on``.
    event_types: Mapping[Operation, str] = field(init=False)
    #: ``{payload name: attribute name}``, from ``fields``.
    field_map: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_types", _event_types(self.event_type, self.on))
        object.__setattr__(self, "field_map", _field_map(self.fields))
        if self.payload is None and CHANGES_KEY in self.field_map:
            raise InvalidWatch(f"the payload name {CHANGES_KEY!r} is reserved for the watched values")
        if not callable(self.recipients) and (
                isinstance(self.recipients, str)
                or not all(isinstance(r, str) and r for r in self.recipients)):
            raise InvalidWatch("recipients must be a callable or a list of tenant ids")
        if "update" in self.event_types and not self.watched:
            raise InvalidWatch("an update watch needs the attributes (columns) whose change emits")

    @property
    def watched(self) -> tuple[str, ...]:
        """The attributes (columns) whose values a change reports."""
        raise NotImplementedError

    def emission(self, change: Change) -> Emission | None:
        """The event type and payload for *change*, or ``None`` if this rule ignores it."""
        event_type = self.event_types.get(change.operation)
        if event_type is None or (self.when is not None and not self.when(change)):
            return None
        built = self.payload(change) if self.payload is not None else default_payload(change)
        if not isinstance(built, Mapping):
            raise TypeError(f"the payload builder returned {type(built).__name__}, not a mapping")
        return Emission(event_type, dict(built))


@dataclass(frozen=True, kw_only=True)
class Watch(Rule):
    """A watched ORM model: register it with :meth:`app.changefeed.ChangeFeed.watch`."""

    model: type[Any]
    attributes: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))
        super().__post_init__()

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(self.attributes)

    @property
    def source(self) -> str:
        return f"orm:{self.model.__name__}"


def _event_types(event_type: str | Mapping[str, str],
                 on: Sequence[Operation] | None) -> dict[Operation, str]:
    if isinstance(event_type, str):
        chosen: Sequence[str] = ("update",) if on is None else on
        if isinstance(chosen, str):
            raise InvalidWatch(f"on must be a list of operations, not the string {chosen!r}")
        pairs = [(op, event_type) for op in chosen]
    else:
        if on is not None and set(on) != set(event_type):
            raise InvalidWatch("with an event type per operation, leave on out (it is the mapping's keys)")
        pairs = list(event_type.items())
    if not pairs:
        raise InvalidWatch("a watch needs at least one operation")
    result: dict[Operation, str] = {}
    for op, name in pairs:
        if op not in OPERATIONS:
            raise InvalidWatch(f"unknown operation {op!r}: use {', '.join(OPERATIONS)}")
        try:
            check_event_type_syntax(name)
        except InvalidEventType as exc:
            raise InvalidWatch(str(exc)) from None
        result[op] = name
    return result


def _field_map(fields: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(fields, str):
        raise InvalidWatch(f"fields must be a list or a mapping, not the string {fields!r}")
    pairs = list(fields.items()) if isinstance(fields, Mapping) else [(f, f) for f in fields]
    result: dict[str, str] = {}
    for key, attribute in pairs:
        if not key or not attribute:
            raise InvalidWatch("field names must be non-empty")
        result[key] = attribute
    return result
