"""The change feed: database changes become webhook events, through a transactional outbox.

::

    application transaction ──ChangeFeed (session events)──▶ outbox row (+ pg_notify)

Declaring watches on ORM models (in the application that writes them)::

    from app.changefeed import ChangeFeed

    feed = ChangeFeed.for_hookline(hookline)
    feed.watch(Crew, attributes=["status"], event_type="crew.status.changed",
               fields={"crew_id": "id"}, recipients=lambda session, crew: [crew.partner_id])
    feed.install(SessionFactory)
"""

from app.changefeed.capture import ChangeFeed
from app.changefeed.detection import Position
from app.changefeed.models import OutboxEntry, OutboxState, WatcherPosition, WatcherRow
from app.changefeed.outbox import NOTIFY_CHANNEL
from app.changefeed.rules import CHANGES_KEY, Change, Operation, Watch, default_payload

__all__ = [
    "CHANGES_KEY",
    "NOTIFY_CHANNEL",
    "Change",
    "ChangeFeed",
    "Operation",
    "OutboxEntry",
    "OutboxState",
    "Position",
    "Watch",
    "WatcherPosition",
    "WatcherRow",
    "default_payload",
]
