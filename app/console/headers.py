"""The headers of a delivery's request as the console shows them: every name, no secret.

No stored secret is read here. The request is rendered twice by the endpoint's own
contract (:func:`app.rendering.render_attempt`), each time with a different made-up
secret (and a made-up previous one while a rotation's grace period runs); a header
whose value differs between the two depends on a secret (a signature, a
``cr3dentials`` credential) and is withheld. Static headers whose names say they carry
a credential (``Authorization``, ``…-Key``, ``…Token``, ``…Secret``, ``Cookie``) are
withheld too. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.catalogue import Catalogue
from app.contracts import get_contract
from app.errors import HooklineError
from app.rendering import EndpointLike, EventLike, render_attempt

CREDENTIAL_NAME = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ShownHeader:
    name: str
    #: None when withheld.
    value: str | None


@dataclass(frozen=True, slots=True)
class _StandIn:
    """The endpoint as rendering sees it, with made-up secrets."""

    contract: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    auth_header: str | None
    headers: Mapping[str, str] | None


def shown_headers(endpoint: EndpointLike, event: EventLike, delivery_id: str,
                  catalogue: Catalogue, at: datetime) -> list[ShownHeader] | None:
    """The request headers of an attempt of *delivery_id* made at *at*, secrets withheld;
    None when the request cannot be rendered."""
    contract = get_contract(endpoint.contract)
    rendered: list[dict[str, str]] = []
    for _ in range(2):
        stand_in = _StandIn(
            contract=endpoint.contract, secret=contract.generate_secret(),
            previous_secret=None if endpoint.previous_secret is None else contract.generate_secret(),
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            auth_header=endpoint.auth_header, headers=endpoint.headers)
        try:
            request = render_attempt(stand_in, event, delivery_id, catalogue, now=at,
                                     timestamp=int(at.timestamp()))
        except HooklineError:
            return None
        rendered.append(request.headers)
    first, second = rendered
    static = {name.lower() for name in (endpoint.headers or {})}
    return [ShownHeader(name, None if second.get(name) != value or (
                name.lower() in static and CREDENTIAL_NAME.search(name)) else value)
            for name, value in first.items()]
