"""The event catalogue: which event types exist, what they mean, and the scope each needs.

Publishing an event type that is not here is refused (``UnknownEventType``). The
built-in catalogue holds the seed products' event types; a deployment adds its own
through ``HOOKLINE_EXTRA_EVENT_TYPES`` (a JSON list of names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidEventType, UnknownEventType
from app.operational import DESCRIPTIONS as OPERATIONAL_DESCRIPTIONS

#: ``crew.document.processed``, ``Pass:Created``, ``run.succeeded``, ``hookline.ping``.
EVENT_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(?:[.:][A-Za-z][A-Za-z0-9_-]*)+$")
MAX_EVENT_TYPE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    description: str
    scope: str | None = None
    #: Keys never delivered for this type, at any depth (see :mod:`app.hygiene`).
    internal_fields: frozenset[str] = frozenset()
    #: A data key whose value is the event's idempotency key when none is given.
    idempotency_field: str | None = None
    #: A data key whose value is the event's ordering key when none is given (app/ordering.py).
    ordering_field: str | None = None


#: CrewPass never names the provider behind a check or a certificate.
_CREWPASS_INTERNAL = frozenset({"provider", "provider_id", "provider_name", "verified_by",
                                "vendor", "internal_note", "internal_notes"})
#: A CrewPass event is about one crew member: its ordering key (app/ordering.py).
_CREWPASS_ORDERING = "crew_unique_id"
#: Cr3dentials never sends the raw attestation, only its hash.
_CR3DENTIALS_INTERNAL = frozenset({"attestation", "rawAttestation"})


def _session(suffix: str, description: str) -> EventType:
    return EventType(f"session.{suffix}", description, internal_fields=_CR3DENTIALS_INTERNAL,
                     idempotency_field="sessionId")


BUILTIN_EVENT_TYPES: tuple[EventType, ...] = (
    # CrewPass catalogue v1
    EventType("crew.document.processed", "A certificate finishes processing and verification",
              "crew:documents:read", _CREWPASS_INTERNAL, ordering_field=_CREWPASS_ORDERING),
    EventType("crew.document.updated", "A document's verification status changes",
              "crew:documents:read", _CREWPASS_INTERNAL, ordering_field=_CREWPASS_ORDERING),
    EventType("crew.compliance.changed", "A crew member's compliance state changes",
              "crew:compliance:read", _CREWPASS_INTERNAL, ordering_field=_CREWPASS_ORDERING),
    EventType("crew.status.changed", "Verification or background-check status changes",
              "crew:status:subscribe", _CREWPASS_INTERNAL, ordering_field=_CREWPASS_ORDERING),
    EventType("crew.profile.updated", "A crew member updates their profile", "crew:profile:read",
              _CREWPASS_INTERNAL, ordering_field=_CREWPASS_ORDERING),
    # Crewship
    EventType("run.succeeded", "A run completed successfully"),
    EventType("run.failed", "A run failed with an error"),
    # Cr3dentials: terminal session statuses
    _session("completed", "A verification session completed"),
    _session("partial_complete", "A verification session partially completed"),
    _session("error", "A verification session ended in error"),
    _session("cancelled", "A verification session was cancelled"),
    _session("terminated", "A verification session was terminated"),
    # The Wallet Crew
    EventType("Pass:Created", "A pass was created"),
    EventType("Pass:Installed", "A pass was installed on a device"),
    EventType("Pass:Uninstalled", "A pass was removed from a device"),
    EventType("Pass:Updated", "A pass was updated"),
    EventType("Pass:UpdateSent", "A pass update was pushed to devices"),
    EventType("Customer:Upserted", "A customer profile was created or updated"),
    EventType("Redirect:Redirected", "A QR or link redirect was followed"),
    # Hookline's own
    EventType("hookline.ping", "A test event sent to check an endpoint"),
    # Operational events about the tenant's own endpoints (app/operational.py)
    *(EventType(name, description) for name, description in OPERATIONAL_DESCRIPTIONS.items()),
)


def check_event_type_syntax(name: str) -> None:
    """Raise ``InvalidEventType`` unless *name* is a well-formed event-type name."""
    if not isinstance(name, str) or not name:
        raise InvalidEventType("event type must be a non-empty string")
    if len(name) > MAX_EVENT_TYPE_LENGTH:
        raise InvalidEventType(f"event type is longer than {MAX_EVENT_TYPE_LENGTH} characters")
    if not EVENT_TYPE_RE.match(name):
        raise InvalidEventType(
            f"malformed event type {name!r}: expected names like 'crew.status.changed' or 'Pass:Created'"
        )


class Catalogue:
    """The set of known event types, looked up by name."""

    def __init__(self, types: Iterable[EventType]) -> None:
        self._types: dict[str, EventType] = {}
        for event_type in types:
            check_event_type_syntax(event_type.name)
            self._types[event_type.name] = event_type

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[EventType]:
        return iter(self._types.values())

    def internal_fields(self, name: str) -> frozenset[str]:
        """The deny-list of *name*; empty for a type no longer in the catalogue."""
        found = self._types.get(name)
        return found.internal_fields if found is not None else frozenset()

    def require(self, name: str) -> EventType:
        """The event type called *name*; ``InvalidEventType``/``UnknownEventType`` otherwise."""
        check_event_type_syntax(name)
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(name) from None


def extra_event_type(spec: str | Mapping[str, Any]) -> EventType:
    """A deployment-defined event type: a name, or an object with ``name`` and optionally
    ``description``, ``scope``, ``internal_fields``, ``idempotency_field`` and
    ``ordering_field``."""
    if isinstance(spec, str):
        return EventType(spec, "Deployment-defined event type")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise InvalidEventType(f"extra event type {spec!r}: expected a name or an object with 'name'")
    unknown = set(spec) - {"name", "description", "scope", "internal_fields", "idempotency_field",
                           "ordering_field"}
    if unknown:
        raise InvalidEventType(f"extra event type {spec['name']!r}: unknown keys {sorted(unknown)}")
    internal = spec.get("internal_fields") or []
    if not isinstance(internal, list) or not all(isinstance(f, str) for f in internal):
        raise InvalidEventType(f"extra event type {spec['name']!r}: internal_fields is a list of names")
    return EventType(
        spec["name"], str(spec.get("description") or "Deployment-defined event type"),
        spec.get("scope"), frozenset(internal), spec.get("idempotency_field"),
        spec.get("ordering_field"),
    )


def default_catalogue(extra: Iterable[str | Mapping[str, Any]] = ()) -> Catalogue:
    """The built-in catalogue plus the deployment's extra event types."""
    return Catalogue([*BUILTIN_EVENT_TYPES, *(extra_event_type(spec) for spec in extra)])
