"""Routes outside any tenant: the event catalogue and health probes."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from app.api import schemas
from app.api.deps import HooklineDep

router = APIRouter(tags=["system"])


@router.get("/api/event-types", response_model=list[schemas.EventTypeView])
def event_types(hookline: HooklineDep) -> list[schemas.EventTypeView]:
    """Every event type that may be published or subscribed to, with its required scope."""
    return [schemas.EventTypeView(name=t.name, description=t.description, scope=t.scope)
            for t in hookline.catalogue]


@router.get("/healthz", response_model=schemas.Health)
def healthz() -> schemas.Health:
    """The process is up."""
    return schemas.Health(status="ok")


@router.get("/readyz", response_model=schemas.Readiness,
            responses={503: {"model": schemas.Readiness}})
def readyz(hookline: HooklineDep, response: Response) -> schemas.Readiness:
    """The database and the broker both answer."""
    try:
        with hookline.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    try:
        broker = hookline.broker.ping()
    except Exception:
        broker = False
    ready = database and broker
    if not ready:
        response.status_code = 503
    return schemas.Readiness(status="ok" if ready else "unavailable", database=database,
                             broker=broker)
