"""Step 2, render: a claimed delivery becomes the exact request of this attempt. Pure.

The bytes come from the endpoint's contract (:mod:`app.rendering`, unchanged: the
golden vectors hold). A render that fails (a bad stored header, a contract error) is
this delivery's failure only: :func:`render` returns the error instead of raising, and
the batch goes on.
"""

from __future__ import annotations

from datetime import datetime

from app.catalogue import Catalogue
from app.engine.claim import Claim
from app.engine.send import OutgoingRequest
from app.rendering import render_attempt


def render(claim: Claim, catalogue: Catalogue, *, now: datetime, timestamp: int,
           timeout: tuple[float, float]) -> OutgoingRequest | Exception:
    """The request for *claim*, signed at *timestamp*, or the error that stopped it."""
    try:
        rendered = render_attempt(claim.endpoint, claim.event, claim.delivery_id, catalogue,
                                  now=now, timestamp=timestamp)
        headers = dict(rendered.headers)
        for name, value in headers.items():  # what the wire can carry, checked here
            name.encode("ascii")
            value.encode("latin-1")
            if any(c in value for c in "\r\n\x00"):
                raise ValueError(f"header {name} contains a line break or NUL")
        return OutgoingRequest(key=claim.endpoint.id, url=claim.endpoint.url,
                               body=rendered.body, headers=headers, timeout=timeout)
    except Exception as exc:  # one delivery's bad data must not stop the batch
        return exc
