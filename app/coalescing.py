"""Enqueue coalescing: the messages of single publishes, sent together from one thread.

``Hookline.publish`` commits its event, hands the new deliveries to an
:class:`EnqueueCoalescer` and returns; a background thread sends whatever has
gathered, one message per partition queue. Nothing waits on purpose: an idle
publisher's delivery is sent at once, and while one send is under way the next
publishes gather behind it, so a busy publisher sends a few messages carrying many
ids instead of one message per event. What the broker refuses is parked in SQL for
the sweeper, as with a direct send.

The window between commit and send is the same as a direct send's, only moved to
another thread: a process that dies inside it leaves committed deliveries without a
message, and the sweeper sends them again (``HOOKLINE_REDISPATCH_AFTER``).
:meth:`EnqueueCoalescer.close` (called by ``Hookline.close`` and at interpreter exit)
sends what is left.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence

from app.dispatch import Dispatcher

log = logging.getLogger(__name__)


class EnqueueCoalescer:
    def __init__(self, dispatcher: Dispatcher, park: Callable[[list[str]], None]) -> None:
        self._dispatcher = dispatcher
        self._park = park
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None

    def submit(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Send ``(delivery_id, endpoint_id)`` pairs soon, from the sending thread."""
        if not pairs:
            return
        with self._lock:
            if self._closing:
                direct = True
            else:
                direct = False
                self._pending.extend(pairs)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="hookline-enqueue",
                                                    daemon=True)
                    self._thread.start()
                    atexit.register(self.close)
                self._ready.notify()
        if direct:
            self._send(list(pairs))

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._ready.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closing:
                    return
            self._send(batch)

    def _send(self, batch: list[tuple[str, str]]) -> None:
        try:
            failed = self._dispatcher.enqueue(batch)
            if failed:
                self._park(failed)
        except Exception:  # the rows are committed: the sweeper sends them later
            log.exception("sending %d deliveries failed; the sweeper will send them", len(batch))

    def close(self, timeout: float = 10.0) -> None:
        """Send what is left and stop the thread."""
        with self._lock:
            self._closing = True
            self._ready.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
