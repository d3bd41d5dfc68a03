"""How an idle producer waits: LISTEN/NOTIFY on PostgreSQL, a short timed wait otherwise.

Every transaction that writes outbox rows on PostgreSQL also issues
``pg_notify('hookline_outbox')`` (:mod:`app.changefeed.outbox`), delivered on
commit. :class:`NotifyWaker` holds one dedicated connection that LISTENs on that
channel and returns from :meth:`~NotifyWaker.wait` as soon as a notification arrives,
or after the poll interval at the latest, so a lost notification or a lost
connection costs at most one interval. After (re)connecting it reports a wake-up,
since notifications sent while it was not listening are gone. :class:`TimedWaker`
just sleeps for the interval (SQLite, or ``HOOKLINE_PRODUCER_LISTEN=false``).
Both return at once after :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import psycopg
from sqlalchemy.engine import make_url

from app.changefeed.outbox import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

#: Seconds to wait for the LISTEN connection before polling alone for a while.
CONNECT_TIMEOUT = 3
#: Longest slice of a wait before checking whether the producer is stopping, seconds.
STOP_CHECK = 0.25


class Waker(Protocol):
    def start(self) -> None:
        """Begin listening, so that changes committed from now on wake :meth:`wait`."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block up to *timeout* seconds; True if there may be new outbox rows."""
        ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class TimedWaker:
    """Sleeps for the interval; :meth:`stop` ends the sleep."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def start(self) -> None:
        pass

    def wait(self, timeout: float) -> bool:
        self._stopped.wait(timeout)
        return False

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        self.stop()


class NotifyWaker:
    """LISTENs on :data:`~app.changefeed.outbox.NOTIFY_CHANNEL` on its own connection."""

    def __init__(self, database_url: str, channel: str = NOTIFY_CHANNEL,
                 connect: Callable[..., psycopg.Connection] = psycopg.connect) -> None:
        self.conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self.channel = channel
        self._connect = connect
        self._connection: psycopg.Connection | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        if self._connection is None:
            self._listen()

    def wait(self, timeout: float) -> bool:
        if self._stopped.is_set():
            return False
        if self._connection is None:
            if self._listen():
                return True
            self._stopped.wait(timeout)
            return False
        connection = self._connection
        deadline = time.monotonic() + timeout
        try:
            while not self._stopped.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # In slices, so that stop() is noticed soon even with a long poll interval.
                if any(True for _ in connection.notifies(timeout=min(left, STOP_CHECK), stop_after=1)):
                    for _ in connection.notifies(timeout=0):
                        pass  # one wake-up covers every notification already queued
                    return True
            return False
        except psycopg.Error as exc:
            log.warning("producer lost its LISTEN connection (%s); polling until it is back", exc)
            self.close_connection()
            return True

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        self.stop()
        self.close_connection()

    def close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None

    def _listen(self) -> bool:
        try:
            connection = self._connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
            connection.execute(f'LISTEN "{self.channel}"')
        except psycopg.Error as exc:
            log.warning("producer cannot LISTEN for outbox notifications (%s); polling", exc)
            return False
        self._connection = connection
        return True
