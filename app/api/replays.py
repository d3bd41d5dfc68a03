"""Replay and retention routes: resend a time window, follow it, cancel it; a tenant's
retention (sharing app/replays.py and app/pruning.py with the CLI).

A replay runs in a worker (``hookline.replay`` on the maintenance queue); POST answers
202 at once with the replay's id, and GET shows its progress.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from app import pruning, replays
from app.api.deps import HooklineDep, IdPath, TenantDep
from app.api.schemas import ApiInput, ApiModel, Id, Text, UtcDateTime
from app.errors import UnknownReplay

router = APIRouter(prefix="/api/{tenantId}", tags=["replays"])


class ReplayCreate(ApiInput):
    since: UtcDateTime = Field(description="Deliveries created at or after this time.")
    until: UtcDateTime | None = Field(default=None, description="…and before this; now if unset.")
    endpoint_id: Id | None = None
    event_type: Text | None = Field(default=None, max_length=128)
    state: Literal["succeeded", "dead", "any"] = "any"
    dry_run: bool = Field(default=False, description="Count what would be sent; send nothing.")


class ReplayCountsOut(ApiModel):
    matched: int
    sent: int
    pruned: int = Field(description="Deliveries whose event payload was pruned: not sent.")
    skipped_disabled: int
    skipped_active: int


class ReplayOut(ApiModel):
    id: str | None = Field(description="None for a dry run.")
    status: Literal["running", "completed", "cancelled", "dry_run"]
    since: datetime
    until: datetime | None
    endpoint_id: str | None
    event_type: str | None
    state: str
    counts: ReplayCountsOut
    created_at: datetime | None
    finished_at: datetime | None


class RetentionIn(ApiInput):
    days: int | None = Field(ge=1, le=3650,
                             description="Days payloads and attempts are kept; null: the default.")


class RetentionOut(ApiModel):
    days: int
    override: int | None
    default_days: int


def _counts(counts: replays.ReplayCounts) -> ReplayCountsOut:
    return ReplayCountsOut(matched=counts.matched, sent=counts.sent, pruned=counts.pruned,
                           skipped_disabled=counts.skipped_disabled,
                           skipped_active=counts.skipped_active)


def _out(view: replays.ReplayView) -> ReplayOut:
    return ReplayOut(id=view.id, status=view.status,
                     since=view.since, until=view.until, endpoint_id=view.endpoint_id,
                     event_type=view.event_type, state=view.state, counts=_counts(view.counts),
                     created_at=view.created_at, finished_at=view.finished_at)


@router.post("/replays", status_code=202, response_model=ReplayOut)
def create_replay(body: ReplayCreate, tenant: TenantDep, hookline: HooklineDep,
                  response: Response) -> ReplayOut:
    """Send again every delivery of the window that matches; 422 for a bad window."""
    request = replays.ReplayRequest(tenant=tenant, since=body.since, until=body.until,
                                    endpoint_id=body.endpoint_id, event_type=body.event_type,
                                    state=body.state)
    days = hookline.settings.retention_days
    if body.dry_run:
        counts = replays.preview(hookline.sessions, request, default_retention_days=days)
        response.status_code = 200
        return ReplayOut(id=None, status="dry_run", since=body.since, until=body.until,
                         endpoint_id=body.endpoint_id, event_type=body.event_type,
                         state=body.state, counts=_counts(counts), created_at=None,
                         finished_at=None)
    view = replays.create_replay(hookline.sessions, request, default_retention_days=days)
    if not hookline.dispatcher.replay(view.id):
        replays.cancel_replay(hookline.sessions, view.id)
        raise HTTPException(503, "the broker is unreachable; the replay was not started")
    return _out(view)


@router.get("/replays/{replayId}", response_model=ReplayOut)
def get_replay(replayId: IdPath, tenant: TenantDep, hookline: HooklineDep) -> ReplayOut:
    try:
        return _out(replays.get_replay(hookline.sessions, replayId, tenant_id=tenant))
    except UnknownReplay:
        raise HTTPException(404, "not found") from None


@router.post("/replays/{replayId}/cancel", response_model=ReplayOut)
@router.delete("/replays/{replayId}", response_model=ReplayOut)
def cancel_replay(replayId: IdPath, tenant: TenantDep, hookline: HooklineDep) -> ReplayOut:
    """Stop a running replay after its current batch; what it sent stays sent."""
    try:
        return _out(replays.cancel_replay(hookline.sessions, replayId, tenant_id=tenant))
    except UnknownReplay:
        raise HTTPException(404, "not found") from None


def _retention(hookline: HooklineDep, tenant: str) -> RetentionOut:
    default = hookline.settings.retention_days
    override = pruning.get_retention(hookline.sessions, tenant).retention_days
    return RetentionOut(days=override or default, override=override, default_days=default)


@router.get("/retention", response_model=RetentionOut)
def get_retention(tenant: TenantDep, hookline: HooklineDep) -> RetentionOut:
    return _retention(hookline, tenant)


@router.put("/retention", response_model=RetentionOut)
def put_retention(body: RetentionIn, tenant: TenantDep, hookline: HooklineDep) -> RetentionOut:
    """Set how long this tenant's payloads and attempts are kept (null: the default)."""
    pruning.set_retention(hookline.sessions, tenant, body.days)
    return _retention(hookline, tenant)
