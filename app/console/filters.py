"""The console's list filters, read from query strings. Pure: the clock is passed in.

A filter that cannot be understood is not an error page: :func:`parse_delivery_filter`
returns the problems by field, and the page shows them next to the form with no rows.
Times are ISO 8601 (``2026-11-01``, ``2026-11-01T10:00``, ``…Z`` or ``…+02:00``; a
time without a zone is UTC) or a span back from now: ``15m``, ``2h``, ``7d``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.models import DeadReason, DeliveryState

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
EVENT_TYPE_RE = re.compile(r"[A-Za-z0-9_.:*-]{1,128}")
SPAN_RE = re.compile(r"(\d{1,6})\s*([smhdw])")
SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TIME_HELP = "use a time such as 2026-11-01T10:00Z, or a span back from now: 15m, 2h, 7d"


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """What the deliveries and dead-letter lists are narrowed to; every field optional."""

    webhook_id: str | None = None
    event_type: str | None = None
    state: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: The form's text as typed, to show it again.
    raw: Mapping[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return all(v is None for v in (self.webhook_id, self.event_type, self.state,
                                       self.reason, self.since, self.until))


def parse_time(text: str, now: datetime) -> datetime | None:
    """*text* as an aware UTC time, or None when it is neither a time nor a span."""
    text = text.strip()
    span = SPAN_RE.fullmatch(text.lower())
    if span is not None:
        try:
            return now - timedelta(seconds=int(span.group(1)) * SPAN_UNITS[span.group(2)])
        except OverflowError:  # further back than year 1
            return None
    if len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00-01:00 falls before year 1 in UTC
        return None


def parse_delivery_filter(query: Mapping[str, str], now: datetime
                          ) -> tuple[DeliveryFilter, dict[str, str]]:
    """The filter in *query* and the problems found, by field name (empty when all is well)."""
    raw = {name: query.get(name, "").strip() for name in
           ("webhook", "event_type", "state", "reason", "since", "until")}
    errors: dict[str, str] = {}
    if raw["webhook"] and not ID_RE.fullmatch(raw["webhook"]):
        errors["webhook"] = "not a webhook id"
    if raw["event_type"] and not EVENT_TYPE_RE.fullmatch(raw["event_type"]):
        errors["event_type"] = "not an event type name"
    if raw["state"] and raw["state"] not in {s.value for s in DeliveryState}:
        errors["state"] = "unknown state"
    if raw["reason"] and raw["reason"] not in {r.value for r in DeadReason}:
        errors["reason"] = "unknown reason"
    times: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        times[name] = parse_time(raw[name], now) if raw[name] else None
        if raw[name] and times[name] is None:
            errors[name] = f"not a time: {TIME_HELP}"
    since, until = times["since"], times["until"]
    if since is not None and until is not None and since >= until:
        errors["until"] = "must be later than since"
    if errors:
        return DeliveryFilter(raw=raw), errors
    return DeliveryFilter(
        webhook_id=raw["webhook"] or None, event_type=raw["event_type"] or None,
        state=raw["state"] or None, reason=raw["reason"] or None, since=since, until=until,
        raw=raw), {}
