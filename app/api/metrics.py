"""``GET /metrics``: Prometheus text exposition (docs/metrics.md).

Outside every tenant: the series carry tenant and endpoint ids, never URLs, payloads
or secrets. With ``HOOKLINE_METRICS_TOKEN`` set, a scrape needs
``Authorization: Bearer <token>``; otherwise it is open, for a network only Prometheus
reaches.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response

from app.api.deps import HooklineDep
from app.observability.exposition import CONTENT_TYPE, scrape, token_matches

router = APIRouter(tags=["system"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}}, 401: {}})
def metrics(hookline: HooklineDep,
            authorization: Annotated[str | None, Header(max_length=512)] = None) -> Response:
    """Prometheus metrics: deliveries, attempts, backlog, dead letters, endpoints, sweeper."""
    if not token_matches(authorization, hookline.settings.metrics_token):
        raise HTTPException(401, "missing or invalid metrics token",
                            headers={"WWW-Authenticate": "Bearer"})
    return Response(scrape(hookline), media_type=CONTENT_TYPE)
