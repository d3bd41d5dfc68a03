"""The producer process (``hookline producer``): relays the outbox and runs polling watchers.

Each cycle polls the watchers that are due (their outbox rows commit with their
position), then relays pending outbox rows batch by batch until a batch comes back
short. In between it waits on the :mod:`~app.changefeed.wakeup` waker: a NOTIFY from
a committing change (PostgreSQL) wakes it at once, otherwise the poll interval or the
next watcher's due time does. Errors (database or broker down) are logged and the
cycle is retried with a growing pause; nothing is lost, because nothing leaves the
outbox except in the transaction that writes its event. A watcher that fails is
logged and tried again after its interval; it holds up neither the relay nor the
other watchers.

Several producers may run at once; see :mod:`app.changefeed.relay` and
:mod:`app.changefeed.polling` for how they share the work. :func:`serve` runs a
producer until SIGTERM or SIGINT, finishing the batch in hand within
``HOOKLINE_PRODUCER_SHUTDOWN_GRACE`` seconds; a second signal exits at once.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any

from app.changefeed.polling import PollingWatch, PollingWatcher, PollReport
from app.changefeed.relay import Relay, RelayReport
from app.changefeed.wakeup import NotifyWaker, TimedWaker, Waker
from app.client import Hookline
from app.errors import InvalidWatch
from app.models import utcnow

log = logging.getLogger(__name__)

#: Batches relayed per cycle at most, so watchers and a stop request get their turn.
MAX_BATCHES_PER_CYCLE = 20
#: Seconds between prunes of old relayed outbox rows.
PRUNE_EVERY = 300.0
#: Longest pause after repeated failures, seconds.
MAX_BACKOFF = 30.0
#: Printed once the producer listens: changes committed from then on wake it.
READY_MESSAGE = "producer ready"


@dataclass(slots=True)
class CycleReport:
    """What one producer cycle did."""

    relayed: int = 0
    failed: int = 0
    deliveries: int = 0
    parked: int = 0
    watchers: dict[str, PollReport] = field(default_factory=dict)
    #: Watchers whose poll raised (logged; each is tried again after its interval).
    watcher_failures: list[str] = field(default_factory=list)
    #: Work is probably waiting (a full batch, or a watcher not caught up): run again now.
    more: bool = False

    def add(self, report: RelayReport) -> None:
        self.relayed += len(report.relayed)
        self.failed += len(report.failed)
        self.deliveries += len(report.deliveries)
        self.parked += len(report.parked)


class Producer:
    """Relays the outbox of *hookline*'s database and runs *watches*; see the module docstring."""

    def __init__(self, hookline: Hookline, *, watches: Sequence[PollingWatch] = (),
                 batch: int | None = None, poll_interval: float | None = None,
                 listen: bool | None = None, waker: Waker | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        settings = hookline.settings
        self.hookline = hookline
        self.batch = batch or settings.producer_batch
        self.poll_interval = poll_interval or settings.producer_poll_interval
        self.relay = Relay(hookline.sessions, hookline.dispatcher, hookline.catalogue,
                           max_payload_bytes=settings.max_payload_bytes, batch=self.batch)
        names = [w.name for w in watches]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidWatch(f"two polling watches are named {', '.join(duplicates)}")
        self.watchers = [PollingWatcher(w, hookline.sessions, hookline.catalogue,
                                        max_payload_bytes=settings.max_payload_bytes) for w in watches]
        if waker is None:
            listening = settings.producer_listen if listen is None else listen
            postgres = settings.resolved_database_url.startswith("postgresql")
            waker = NotifyWaker(settings.resolved_database_url) if listening and postgres else TimedWaker()
        self.waker = waker
        self.monotonic = monotonic
        self._due = {w.name: 0.0 for w in self.watchers}
        self._next_prune = 0.0
        self._stop = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Finish the batch in hand and return from :meth:`run`."""
        self._stop.set()
        self.waker.stop()

    def close(self) -> None:
        self.waker.close()

    # -- one cycle -------------------------------------------------------------------
    def cycle(self) -> CycleReport:
        """Poll the due watchers, then relay until the outbox has no full batch left."""
        report = CycleReport()
        for watcher in self.watchers:
            if self.stopping:
                return report
            now = self.monotonic()
            if now < self._due[watcher.name]:
                continue
            try:
                polled = watcher.poll()
            except Exception:
                # One broken watcher (its source down, a bad query) must not stall the outbox.
                log.exception("watcher %s failed; trying again in %.1fs", watcher.name,
                              watcher.watch.interval)
                self._due[watcher.name] = now + watcher.watch.interval
                report.watcher_failures.append(watcher.name)
                continue
            report.watchers[watcher.name] = polled
            more = not (polled.caught_up or polled.busy)
            self._due[watcher.name] = now if more else now + watcher.watch.interval
            report.more = report.more or more
        for _ in range(MAX_BATCHES_PER_CYCLE):
            if self.stopping:
                return report
            relayed = self.relay.relay_batch()
            report.add(relayed)
            if relayed.claimed or relayed.failed:
                log.info("relayed %d outbox row(s): %d event(s), %d deliveries, %d failed, %d parked",
                         relayed.claimed, len(relayed.relayed), len(relayed.deliveries),
                         len(relayed.failed), len(relayed.parked))
            if relayed.claimed < self.batch:
                break
        else:
            report.more = True
        self._prune()
        return report

    def _prune(self) -> None:
        retention = self.hookline.settings.outbox_retention
        if not retention or self.monotonic() < self._next_prune:
            return
        self._next_prune = self.monotonic() + PRUNE_EVERY
        pruned = self.relay.prune(utcnow() - timedelta(seconds=retention))
        if pruned:
            log.info("pruned %d relayed outbox row(s) older than %s", pruned,
                     timedelta(seconds=retention))

    # -- running ---------------------------------------------------------------------
    def run_once(self, max_cycles: int = 10_000) -> CycleReport:
        """Cycle until nothing is waiting: every watcher caught up, the outbox drained."""
        total = CycleReport()
        for _ in range(max_cycles):
            report = self.cycle()
            total.relayed += report.relayed
            total.failed += report.failed
            total.deliveries += report.deliveries
            total.parked += report.parked
            total.watchers.update(report.watchers)
            if not report.more or self.stopping:
                break
        return total

    def run(self) -> None:
        """Cycle and wait until :meth:`stop`; errors are logged and retried with a growing pause."""
        self.waker.start()
        log.warning("%s: batch %d, poll every %.2fs, %s, %d watcher(s)%s", READY_MESSAGE, self.batch,
                    self.poll_interval, type(self.waker).__name__, len(self.watchers),
                    "".join(f" {w.name}" for w in self.watchers))
        failures = 0
        while not self.stopping:
            try:
                report = self.cycle()
            except Exception:
                failures += 1
                pause = min(self.poll_interval * 2 ** min(failures, 10), MAX_BACKOFF)
                log.exception("producer cycle failed (%d in a row); trying again in %.1fs", failures, pause)
                self._stop.wait(pause)
                continue
            failures = 0
            if not report.more:
                self.waker.wait(self._idle_timeout())

    def _idle_timeout(self) -> float:
        timeout = self.poll_interval
        now = self.monotonic()
        for due in self._due.values():
            timeout = min(timeout, max(due - now, 0.0))
        return timeout


def serve(producer: Producer, *, grace: float) -> None:
    """Run *producer* until SIGTERM or SIGINT, then give it *grace* seconds to finish its batch."""

    # Armed by the first signal, cancelled once run() returns: only a producer stuck past
    # its grace period is cut short.
    deadline = threading.Timer(grace, lambda: hard_exit("did not stop within the grace period"))
    deadline.daemon = True

    def hard_exit(reason: str) -> None:
        log.error("producer %s; exiting now (its transaction rolls back)", reason)
        os._exit(1)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if producer.stopping:
            hard_exit("was signalled twice")
        log.warning("producer stopping (%s): finishing the batch in hand", signal.Signals(signum).name)
        producer.stop()
        deadline.start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        producer.run()
    finally:
        deadline.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        producer.close()
    log.warning("producer stopped")


def load_watches(specs: Iterable[str]) -> list[PollingWatch]:
    """The polling watches named by ``module:attribute`` import paths.

    The attribute may be a :class:`PollingWatch`, an iterable of them, or a callable
    taking no arguments that returns either (so engines are built when the producer
    starts, not when the module is imported).
    """
    found: list[PollingWatch] = []
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise InvalidWatch(f"--watchers {spec!r}: use module.path:attribute")
        try:
            target: Any = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InvalidWatch(f"--watchers {spec!r}: {exc}") from None
        if callable(target) and not isinstance(target, PollingWatch):
            target = target()
        if isinstance(target, PollingWatch):
            items = [target]
        elif isinstance(target, Iterable) and not isinstance(target, str | bytes):
            items = list(target)
        else:
            raise InvalidWatch(f"--watchers {spec!r}: {target!r} is not a PollingWatch or a list of them")
        for item in items:
            if not isinstance(item, PollingWatch):
                raise InvalidWatch(f"--watchers {spec!r}: {item!r} is not a PollingWatch")
            found.append(item)
    return found
