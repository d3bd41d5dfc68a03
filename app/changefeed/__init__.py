"""The change feed: database changes become webhook events, through a transactional outbox.

::

    application transaction ──ChangeFeed (session events)──▶ outbox row (+ pg_notify)
    polling watcher page    ──PollingWatcher──────────────▶ outbox row (+ position)
                                                                │ hookline producer
                                                                ▼
                          Relay: event (same event id) + deliveries, row marked relayed
                                 (one transaction), then enqueue_or_park ─▶ partition queues

Declaring watches on ORM models (in the application that writes them)::

    from app.changefeed import ChangeFeed

    feed = ChangeFeed.for_hookline(hookline)
    feed.watch(Crew, attributes=["status"], event_type="crew.status.changed",
               fields={"crew_id": "id"}, recipients=lambda session, crew: [crew.partner_id])
    feed.install(SessionFactory)

Declaring a polling watcher (run by ``hookline producer --watchers module:WATCHES``)::

    WATCHES = [PollingWatch(name="legacy-crew", query=legacy_crew_table, key="id",
                            columns=["status"], event_type="crew.status.changed",
                            fields={"crew_id": "id"}, recipients=["acme"])]

See ``docs/producers.md`` for the guarantees and a worked example.
"""

from app.changefeed.capture import ChangeFeed
from app.changefeed.detection import Position
from app.changefeed.models import OutboxEntry, OutboxState, WatcherPosition, WatcherRow
from app.changefeed.outbox import NOTIFY_CHANNEL
from app.changefeed.polling import PollingWatch, PollingWatcher, PollReport
from app.changefeed.producer import READY_MESSAGE, CycleReport, Producer, load_watches, serve
from app.changefeed.relay import Relay, RelayReport
from app.changefeed.rules import CHANGES_KEY, Change, Operation, Watch, default_payload

__all__ = [
    "CHANGES_KEY",
    "NOTIFY_CHANNEL",
    "READY_MESSAGE",
    "Change",
    "ChangeFeed",
    "CycleReport",
    "Operation",
    "OutboxEntry",
    "OutboxState",
    "PollReport",
    "PollingWatch",
    "PollingWatcher",
    "Position",
    "Producer",
    "Relay",
    "RelayReport",
    "Watch",
    "WatcherPosition",
    "WatcherRow",
    "default_payload",
    "load_watches",
    "serve",
]
