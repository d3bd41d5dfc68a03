"""Polling watches the integration tests hand to ``hookline producer --watchers``.

``WATCHES`` is imported by the producer subprocess (``tests.integration.changefeed_watchers:WATCHES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from app.changefeed import PollingWatch
from tests.changefeed_domain import legacy_audit, legacy_crew


def partner_of(_session: Session, row: Mapping[str, Any]) -> list[str]:
    return [row["partner"]]


WATCHES = [
    # Full scan with digests: inserts and status changes, whatever else changes.
    PollingWatch(name="legacy-crew", query=legacy_crew, key="id", columns=["status"],
                 fields={"crew_id": "id", "status": "status"}, event_type="crew.status.changed",
                 recipients=partner_of, interval=0.2, batch=2),
    # An append-only feed behind a serial cursor, read three rows a page.
    PollingWatch(name="legacy-audit", query=legacy_audit, key="seq", cursor="seq", track_changes=False,
                 fields=["seq", "action"], event_type="crew.profile.updated", recipients=partner_of,
                 interval=0.2, batch=3),
]
