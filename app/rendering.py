"""From stored rows to the exact request of one attempt. Pure: no clock, no I/O.

Joins the pieces a delivery needs: the event's public payload (:mod:`app.hygiene`,
with the catalogue's deny-list), the endpoint's signing keys (the previous secret
only while its grace period runs), its contract's renderer and its static headers,
and, for an event with an ordering key, its sequence headers (:func:`ordering_headers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from app.catalogue import Catalogue
from app.contracts import (
    AttemptContext,
    EventView,
    RenderedRequest,
    SigningKeys,
    get_contract,
    with_static_headers,
)
from app.hygiene import public_payload


class EndpointLike(Protocol):
    """What rendering reads of an endpoint: an ORM row or the engine's plain row."""

    @property
    def contract(self) -> str: ...
    @property
    def secret(self) -> str: ...
    @property
    def previous_secret(self) -> str | None: ...
    @property
    def previous_secret_expires_at(self) -> datetime | None: ...
    @property
    def auth_header(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str] | None: ...


class EventLike(Protocol):
    """What rendering reads of an event."""

    @property
    def id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


#: The event's number per tenant and ordering key (1, 2, 3…): gaps and reordering show.
SEQUENCE_HEADER = "X-Hookline-Sequence"
#: The ordering key itself, percent-encoded UTF-8 (a key may hold any text but NUL).
ORDERING_KEY_HEADER = "X-Hookline-Ordering-Key"


def ordering_headers(ordering_key: str | None, sequence: int | None) -> dict[str, str]:
    """The headers every contract adds for an event with a sequence number; none without."""
    if ordering_key is None or sequence is None:
        return {}
    return {SEQUENCE_HEADER: str(sequence), ORDERING_KEY_HEADER: quote(ordering_key, safe="")}


def signing_keys(endpoint: EndpointLike, now: datetime) -> SigningKeys:
    """The endpoint's current secret, plus the previous one until its grace period ends."""
    previous = endpoint.previous_secret
    expires = endpoint.previous_secret_expires_at
    if previous is None or expires is None or expires <= now:
        return SigningKeys(current=endpoint.secret)
    return SigningKeys(current=endpoint.secret, previous=previous)


def event_view(event: EventLike, catalogue: Catalogue) -> EventView:
    return EventView(
        id=event.id, type=event.event_type, tenant_id=event.tenant_id,
        occurred_at=event.occurred_at,
        data=public_payload(event.payload, catalogue.internal_fields(event.event_type)),
    )


def render_attempt(
    endpoint: EndpointLike,
    event: EventLike,
    delivery_id: str,
    catalogue: Catalogue,
    *,
    now: datetime,
    timestamp: int,
) -> RenderedRequest:
    """The body and headers of one attempt of *delivery_id*, signed at *timestamp*."""
    contract = get_contract(endpoint.contract)
    context = AttemptContext(delivery_id=delivery_id, keys=signing_keys(endpoint, now),
                             timestamp=timestamp, auth_header=endpoint.auth_header)
    rendered = contract.render(event_view(event, catalogue), context)
    rendered = with_static_headers(rendered, endpoint.headers or {})
    # ``ordering_key`` and ``sequence`` are optional: stored rows have them, a stand-in may not.
    extra = ordering_headers(getattr(event, "ordering_key", None), getattr(event, "sequence", None))
    return replace(rendered, headers={**rendered.headers, **extra}) if extra else rendered
