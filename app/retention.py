"""Retention policy (pure): how long each tenant's payloads and attempts are kept, and
which rows of a prune walk may go.

A prune walks a table in primary-key order, a batch at a time (:mod:`app.pruning`).
For each batch it asks :func:`prunable` which rows are past their tenant's horizon and
belong to final deliveries only, and :func:`walk_finished` whether to read on: keys
are assigned in time order, so a batch in which every row is newer than the newest
horizon means the rest of the table is newer still.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.errors import InputError

#: Ten years: longer is not retention any more, and the arithmetic stays in range.
MAX_RETENTION_DAYS = 3650


def check_retention_days(days: int | None) -> int | None:
    """A tenant's override: whole days from 1 to :data:`MAX_RETENTION_DAYS`, or None (the default)."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise InputError(f"retention must be a whole number of days from 1 to {MAX_RETENTION_DAYS}")
    return days


@dataclass(frozen=True, slots=True)
class Horizon:
    """The moment before which each tenant's data is pruned, as of *now*."""

    now: datetime
    default_days: int
    overrides: Mapping[str, int] = field(default_factory=dict)

    def days(self, tenant_id: str) -> int:
        return self.overrides.get(tenant_id, self.default_days)

    def cutoff(self, tenant_id: str) -> datetime:
        return self.now - timedelta(days=self.days(tenant_id))

    @property
    def newest_cutoff(self) -> datetime:
        """The latest cutoff of any tenant: a row newer than this is kept by everyone."""
        shortest = min([self.default_days, *self.overrides.values()])
        return self.now - timedelta(days=shortest)


@dataclass(frozen=True, slots=True)
class WalkRow:
    """One row a prune walk read: its key, its tenant, its time, and whether every
    delivery it belongs to is final (succeeded or dead)."""

    key: str | int
    tenant_id: str
    at: datetime
    final: bool


def prunable(rows: Sequence[WalkRow], horizon: Horizon) -> list[str | int]:
    """Keys of the rows older than their tenant's cutoff whose deliveries are all final."""
    return [row.key for row in rows if row.final and row.at < horizon.cutoff(row.tenant_id)]


def walk_finished(rows: Sequence[WalkRow], horizon: Horizon, batch: int) -> bool:
    """True when the walk has read its last useful batch: a short one (the end of the
    table), or one whose rows are all newer than every tenant's cutoff."""
    if len(rows) < batch:
        return True
    newest = horizon.newest_cutoff
    return all(row.at >= newest for row in rows)
