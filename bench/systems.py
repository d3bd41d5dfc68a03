"""The two systems under test, each ready to start, publish to and stop.

* :class:`HooklineSystem`: a fresh PostgreSQL database, its own Redis key prefix, one
  tenant per endpoint (the endpoints point at the receiver), ``python -m app.cli
  worker`` processes, and three ways to publish: ``publish()`` once per event,
  ``publish_many()`` in batches (when the client has it), both through the
  benchmark's own :class:`app.client.Hookline`.
* :class:`NaiveSystem`: ``bench/naive.py``'s one-task-per-event Celery worker with its
  own key prefix, fed with ``apply_async``.

Both publish through :meth:`publish`, which returns every event id with the
``time.time()`` taken just before the call that published it and the index of the
endpoint it went to. Every process started is registered with the run, so the run's
``finally`` stops it even if a section's own clean-up never runs.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from app import admin
from app.client import Hookline
from app.partitioning import partition_for
from bench.harness import (
    BenchError,
    CpuSample,
    Group,
    Sink,
    bench_database,
    child_env,
    delete_keys,
    log,
    wait_workers,
)
from config.settings import get_settings

EVENT_TYPE = "crew.status.changed"
#: publish_many accepts up to this many items per call.
BATCH_LIMIT = 1000
#: Events per publish chunk between deadline checks on the one-by-one paths.
CHUNK = 50

Route = Callable[[int], int]


def payload(seq: int, published_at: float) -> dict[str, Any]:
    """~0.9 KB of event data; the envelope around it makes the body ~1 KB."""
    return {
        "published_at": published_at,
        "seq": seq,
        "crew_id": f"crw_{seq % 97:05d}",
        "background_check_status": "completed",
        "previous_status": "pending",
        "checks": [{"kind": k, "result": "clear", "provider": "bench"} for k in
                   ("identity", "criminal", "sanctions", "medical", "stcw")],
        "notes": "x" * 400,
    }


@dataclass
class Published:
    """What one publish call sequence produced."""

    at: dict[str, float] = field(default_factory=dict)  # event id -> time before its call
    target: dict[str, int] = field(default_factory=dict)  # event id -> endpoint index
    seconds: float = 0.0
    errors: int = 0
    first_error: str = ""
    cut_short: bool = False  # the deadline came before every event was published

    @property
    def count(self) -> int:
        return len(self.at)

    def add(self, event_id: str, at: float, target: int) -> None:
        self.at[event_id] = at
        self.target[event_id] = target

    def fail(self, message: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = message


def paced(count: int, rate: float | None, chunk: int,
          send: Callable[[list[int]], None], deadline: float | None) -> tuple[float, bool]:
    """Call *send* with consecutive index lists until *count* are sent.

    Flat out in chunks of *chunk*, or one at a time at *rate*/s. Stops early (returns
    True as the second value) when monotonic time passes *deadline*. Returns the loop's
    wall seconds.
    """
    started = time.time()
    interval = 1.0 / rate if rate else 0.0
    step = 1 if rate else max(1, chunk)
    cut = False
    for first in range(0, count, step):
        if deadline is not None and time.monotonic() >= deadline:
            cut = True
            break
        if rate:
            delay = started + first * interval - time.time()
            if delay > 0:
                time.sleep(delay)
        send(list(range(first, min(count, first + step))))
    return time.time() - started, cut


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint of the run: the tenant it belongs to and the receiver path it posts to."""

    path: str
    tenant: str = ""
    endpoint: str = ""
    partition: int | None = None


# -- Hookline -----------------------------------------------------------------------------
class HooklineSystem:
    """Hookline on its own database and key prefix; *workers* worker processes."""

    name = "hookline"

    def __init__(self, args: Any, sink: Sink, workdir: Path, registry: list[Group],
                 prefixes: list[str], *, workers: int, label: str,
                 settings: dict[str, Any] | None = None) -> None:
        self.args = args
        self.overrides = dict(settings or {})
        self.sink = sink
        self.workdir = workdir
        self.registry = registry
        self.worker_count = workers
        self.label = label
        self.prefix = f"hookline-bench-{uuid.uuid4().hex[:8]}:"
        prefixes.append(self.prefix)
        self.groups: list[Group] = []
        self.targets: list[Target] = []
        self.generation = 0
        self.seq = 0
        #: Seconds a stopping worker gets to finish its tasks before SIGKILL.
        self.stop_grace = 10.0
        self.hl: Hookline
        self.pg_url = ""
        self.env: dict[str, str] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._stack = ExitStack()

    # lifetime
    def __enter__(self) -> HooklineSystem:
        try:
            self.pg_url = self._stack.enter_context(bench_database(self.args.pg_admin_url))
            settings = get_settings(
                database_url=self.pg_url, broker_url=self.args.redis_url,
                broker_key_prefix=self.prefix, data_dir=self.workdir, log_level="WARNING",
                worker_concurrency=self.args.concurrency, worker_pool=self.args.pool,
                # The sink is plain http on 127.0.0.1, which the egress policy refuses by default.
                allow_http=True, egress_allow=["127.0.0.1/32"], **self.overrides,
            )
            self.hl = Hookline(settings)
            self._stack.callback(self.hl.close)
            self._stack.callback(self._forget_keys)
            self._stack.callback(self.stop_workers)
            self._stack.callback(self._close_conn)
            self.env = child_env(settings)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        """One read on the run's database over a kept connection (polling opens no new ones)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.pg_url, autocommit=True, connect_timeout=5)
        return self._conn.execute(sql).fetchall()

    def _forget_keys(self) -> None:
        removed = delete_keys(self.args.redis_url, [self.prefix])
        log(f"{self.label}: deleted {removed} Redis key(s)")

    @property
    def has_batch(self) -> bool:
        return hasattr(self.hl, "publish_many")

    # endpoints
    def add_targets(self, paths: Sequence[str], *, distinct_partitions: bool) -> list[Target]:
        """One tenant per path, with one endpoint posting to the receiver at that path.

        With *distinct_partitions*, an endpoint landing on a partition already used is
        disabled and another one added (at most 20 tries per tenant).
        """
        run = uuid.uuid4().hex[:6]
        partitions = self.hl.settings.partitions
        used: set[int] = set()
        for i, path in enumerate(paths):
            tenant = admin.create_tenant(self.hl.sessions, f"bench-{run}-{i}")
            for attempt in range(20):
                created = admin.add_endpoint(self.hl.sessions, self.hl.catalogue, tenant=tenant.id,
                                             url=self.sink.url(path), events=[EVENT_TYPE],
                                             policy=self.hl.egress_policy)
                partition = partition_for(created.endpoint.id, partitions)
                if (not distinct_partitions or partition not in used or len(used) >= partitions
                        or attempt == 19):
                    used.add(partition)
                    self.targets.append(Target(path=path, tenant=tenant.id,
                                               endpoint=created.endpoint.id, partition=partition))
                    break
                admin.set_endpoint_enabled(self.hl.sessions, created.endpoint.id, False)
        return self.targets

    # workers
    def start_workers(self) -> None:
        tag = self.prefix.rstrip(":").rsplit("-", 1)[-1]
        started: list[Group] = []
        for i in range(self.worker_count):
            argv = [sys.executable, "-m", "app.cli", "worker",
                    f"--hostname=bench{i}g{self.generation}-{tag}@%h"]
            if i == 0:
                argv.append("--beat")
            group = Group(f"{self.label} worker {i}", argv, self.env,
                          self.workdir / f"{tag}-worker{i}-{self.generation}.log")
            self.registry.append(group)
            started.append(group)
        self.groups += started
        self.generation += 1
        log(f"{self.label}: starting {self.worker_count} worker(s), {self.args.pool} pool, "
            f"concurrency {self.args.concurrency}")
        wait_workers(self.hl.sender, self.groups, 60)

    def stop_workers(self) -> None:
        for group in self.groups:
            group.stop(self.stop_grace)
        self.groups.clear()

    def cpu(self) -> CpuSample:
        return CpuSample.take(self.groups, self.sink.group)

    # publishing
    def publish(self, count: int, route: Route, *, rate: float | None = None,
                batch: bool = False, deadline: float | None = None) -> Published:
        """Publish *count* events, event i to ``self.targets[route(i)]``.

        *batch* uses ``publish_many`` (up to BATCH_LIMIT events of one tenant per call);
        otherwise one ``publish()`` per event. A deadline (monotonic) stops it early.
        """
        out = Published()
        base = self.seq
        self.seq += count

        def one_by_one(indices: list[int]) -> None:
            for i in indices:
                target = route(i)
                at = time.time()
                result = self.hl.publish(self.targets[target].tenant, EVENT_TYPE,
                                         payload(base + i, at))
                out.add(result.event_id, at, target)

        def batches(indices: list[int]) -> None:
            by_target: dict[int, list[int]] = {}
            for i in indices:
                by_target.setdefault(route(i), []).append(i)
            for target, members in by_target.items():
                for start in range(0, len(members), BATCH_LIMIT):
                    part = members[start:start + BATCH_LIMIT]
                    at = time.time()
                    items = [{"event_type": EVENT_TYPE, "data": payload(base + i, at),
                              "idempotency_key": None, "occurred_at": None} for i in part]
                    result = self.hl.publish_many(self.targets[target].tenant, items)  # type: ignore[attr-defined]
                    for item in result.items:
                        event_id = getattr(item, "event_id", None)
                        if getattr(item, "status", None) == "error" or not event_id:
                            out.fail(str(getattr(item, "error", None)))
                        else:
                            out.add(event_id, at, target)
                    if len(result.items) != len(part):
                        out.fail(f"publish_many returned {len(result.items)} results for "
                                 f"{len(part)} items")

        if batch:
            chunk = BATCH_LIMIT * max(1, len({route(i) for i in range(min(count, 1000))}))
            out.seconds, out.cut_short = paced(count, None, chunk, batches, deadline)
        else:
            out.seconds, out.cut_short = paced(count, rate, CHUNK, one_by_one, deadline)
        return out

    # the database's view
    def succeeded(self) -> tuple[int, float | None]:
        """(deliveries in state succeeded, the latest succeeded_at as epoch seconds)."""
        row = self._query("SELECT count(*), extract(epoch FROM max(succeeded_at)) "
                          "FROM deliveries WHERE state = 'succeeded'")[0]
        return int(row[0]), (float(row[1]) if row[1] is not None else None)

    def states(self) -> dict[str, int]:
        """Deliveries per state, plus ``attempted`` (attempt_count >= 1)."""
        rows = self._query("SELECT state, count(*) FROM deliveries GROUP BY state")
        states = {str(state): int(n) for state, n in rows}
        states["attempted"] = int(self._query(
            "SELECT count(*) FROM deliveries WHERE attempt_count >= 1")[0][0])
        return states


# -- the naive baseline -------------------------------------------------------------------
class NaiveSystem:
    """bench/naive.py's prefork worker on its own key prefix."""

    name = "naive"
    has_batch = False

    def __init__(self, args: Any, sink: Sink, workdir: Path, registry: list[Group],
                 prefixes: list[str], *, label: str) -> None:
        from bench.naive import DELIVER_TASK, create_app

        self.args = args
        self.sink = sink
        self.workdir = workdir
        self.registry = registry
        self.label = label
        self.prefix = f"hookline-bench-naive-{uuid.uuid4().hex[:8]}:"
        prefixes.append(self.prefix)
        self.app = create_app(args.redis_url, self.prefix)
        self.task = self.app.tasks[DELIVER_TASK]
        self.groups: list[Group] = []
        self.targets: list[Target] = []
        self.generation = 0
        self.seq = 0

    def __enter__(self) -> NaiveSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop_workers()
        finally:
            try:
                removed = delete_keys(self.args.redis_url, [self.prefix])
                log(f"{self.label}: deleted {removed} Redis key(s)")
            finally:
                self.app.close()

    def add_targets(self, paths: Sequence[str], *, distinct_partitions: bool = False) -> list[Target]:
        self.targets += [Target(path=p) for p in paths]
        return self.targets

    def start_workers(self) -> None:
        env = child_env(NAIVE_BROKER_URL=self.args.redis_url, NAIVE_KEY_PREFIX=self.prefix)
        tag = self.prefix.rstrip(":").rsplit("-", 1)[-1]
        argv = [sys.executable, "-m", "celery", "-A", "bench.naive", "worker", "--pool=prefork",
                f"--concurrency={self.args.naive_concurrency}", "--loglevel=WARNING",
                f"--hostname=naive{self.generation}-{tag}@%h"]
        group = Group(f"{self.label} worker", argv, env,
                      self.workdir / f"naive-{tag}-{self.generation}.log")
        self.registry.append(group)
        self.groups.append(group)
        self.generation += 1
        log(f"{self.label}: starting a prefork worker, concurrency {self.args.naive_concurrency}")
        wait_workers(self.app, self.groups, 60)

    def stop_workers(self) -> None:
        for group in self.groups:
            group.stop()
        self.groups.clear()

    def cpu(self) -> CpuSample:
        return CpuSample.take(self.groups, self.sink.group)

    def publish(self, count: int, route: Route, *, rate: float | None = None,
                batch: bool = False, deadline: float | None = None) -> Published:
        """One ``apply_async`` per event (the baseline has no batch path)."""
        out = Published()
        base = self.seq
        self.seq += count
        urls = [self.sink.url(t.path) for t in self.targets]

        def send(indices: list[int]) -> None:
            for i in indices:
                target = route(i)
                at = time.time()
                event_id = f"nv_{uuid.uuid4().hex}"
                body = json.dumps({"schema_version": 1, "event_id": event_id,
                                   "event_type": EVENT_TYPE,
                                   "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime(at)),
                                   "partner_id": "bench", "data": payload(base + i, at)},
                                  separators=(",", ":"))
                self.task.apply_async(args=(urls[target], body, event_id))
                out.add(event_id, at, target)

        out.seconds, out.cut_short = paced(count, rate, CHUNK * 4, send, deadline)
        return out


@contextmanager
def started(system: HooklineSystem | NaiveSystem) -> Iterator[None]:
    """The system's workers running for the block, stopped after it."""
    system.start_workers()
    try:
        yield
    finally:
        system.stop_workers()


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)
