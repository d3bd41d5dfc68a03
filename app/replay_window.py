"""Replay selection (pure): the time window a replay may cover, and what it does with
each delivery it finds there.

A replay walks a tenant's deliveries created in ``[since, until)`` in ``(created_at,
id)`` order; :class:`Cursor` is the position after the last one handled. Each delivery
gets one :func:`outcome`: sent again, or counted as skipped with the reason.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.errors import InvalidSelection
from app.models import FINAL_STATES


class StateFilter(enum.StrEnum):
    """Which deliveries a replay takes: those that succeeded, the dead ones, or all."""

    SUCCEEDED = "succeeded"
    DEAD = "dead"
    ANY = "any"


class Outcome(enum.StrEnum):
    SENT = "sent"
    #: The event's payload was pruned (app/pruning.py): there is nothing left to send.
    PRUNED = "pruned"
    #: The endpoint is disabled or deleted: sending would only dead-letter it again.
    SKIPPED_DISABLED = "skipped_disabled"
    #: The delivery is still pending, retrying or in flight: it will be sent anyway.
    SKIPPED_ACTIVE = "skipped_active"


def parse_state_filter(value: str) -> StateFilter:
    try:
        return StateFilter(value)
    except ValueError:
        raise InvalidSelection(f"unknown state {value!r} (succeeded, dead or any)") from None


def check_window(since: datetime, until: datetime | None, *, retention_days: int,
                 now: datetime) -> tuple[datetime, datetime]:
    """The window ``[since, until)`` a replay will walk, *until* capped at *now*.

    Refused: *since* not before *until*, and a window that starts before the tenant's
    retention horizon (those events' payloads are pruned, or about to be).
    """
    if since.tzinfo is None or (until is not None and until.tzinfo is None):
        raise InvalidSelection("since and until need a time zone (UTC is assumed on the CLI)")
    end = now if until is None or until > now else until
    if since >= end:
        shown = "now" if end is now else end.isoformat()
        raise InvalidSelection(f"since ({since.isoformat()}) must be before until ({shown})")
    horizon = now - timedelta(days=retention_days)
    if since < horizon:
        raise InvalidSelection(
            f"the window starts at {since.isoformat()}, before the retention horizon of "
            f"{retention_days} days ({horizon.isoformat(timespec='seconds')}): older payloads "
            "are pruned and cannot be replayed; start the window at or after the horizon")
    return since, end


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """The last delivery handled, in walk order; the next batch starts after it."""

    created_at: datetime
    delivery_id: str


@dataclass(frozen=True, slots=True)
class Candidate:
    delivery_id: str
    endpoint_id: str
    created_at: datetime
    state: str
    event_pruned: bool
    endpoint_live: bool


def outcome(candidate: Candidate) -> Outcome:
    """What a replay does with one delivery of its window; pruning wins over the rest."""
    if candidate.event_pruned:
        return Outcome.PRUNED
    if not candidate.endpoint_live:
        return Outcome.SKIPPED_DISABLED
    if candidate.state not in FINAL_STATES:
        return Outcome.SKIPPED_ACTIVE
    return Outcome.SENT


def next_cursor(batch: Sequence[Candidate], current: Cursor | None) -> Cursor | None:
    """The cursor after *batch* (read in walk order); unchanged when it is empty."""
    if not batch:
        return current
    last = batch[-1]
    return Cursor(last.created_at, last.delivery_id)
