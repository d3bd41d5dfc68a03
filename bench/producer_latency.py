"""Change-feed latency: commit to enqueue, and commit to receipt, with ``hookline producer`` in the path.

On the real PostgreSQL (a fresh ``hookline_bench_<hex>`` database, dropped at the end)
and the real Redis (keys under ``hookline-bench-pl-<hex>:``, deleted at the end):

* the benchmark process is the application: it changes a watched column of a row
  through an ORM session with the change feed installed, one change per transaction,
  at a fixed rate, and notes ``time.time()`` right after each commit returns;
* one ``python -m app.cli producer`` process relays the outbox;
* **commit -> enqueue**: no worker runs; the benchmark itself pops the endpoint's
  partition queue (``BRPOP``) and notes when each delivery's message arrives in Redis;
* **commit -> receipt**: a ``python -m app.cli worker`` delivers to ``bench/sink.py`` (a
  loopback HTTP receiver in its own process), which notes the first receipt of each
  event id.

Both are measured twice: with the producer woken by LISTEN/NOTIFY (the default on
PostgreSQL) and with ``--no-listen`` (polling every ``--poll-interval`` seconds).
Every wait is bounded; every child process is killed in a ``finally``; all traffic
stays on 127.0.0.1.

Run: ``.venv/bin/python bench/producer_latency.py [--events 300] [--rate 50]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import Integer, String, text  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker  # noqa: E402

from app import admin  # noqa: E402
from app.changefeed import ChangeFeed  # noqa: E402
from app.changefeed.producer import READY_MESSAGE  # noqa: E402
from app.client import Hookline  # noqa: E402
from app.names import partition_queue  # noqa: E402
from app.partitioning import partition_for  # noqa: E402
from bench.harness import (  # noqa: E402
    PG_ADMIN_URL,
    REDIS_URL,
    BenchError,
    Group,
    Sink,
    bench_database,
    child_env,
    delete_keys,
    log,
    percentile,
    wait_for,
    wait_workers,
)
from config.settings import get_settings  # noqa: E402


class BenchBase(DeclarativeBase):
    pass


class CrewRow(BenchBase):
    """The application's table: a change of ``status`` is watched."""

    __tablename__ = "bench_crew"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(40), default="pending")


@dataclass
class Figures:
    mode: str
    measure: str
    count: int
    latencies_ms: list[float]

    def row(self) -> str:
        p50, p99 = percentile(self.latencies_ms, 50), percentile(self.latencies_ms, 99)
        top = max(self.latencies_ms) if self.latencies_ms else None
        cells = [f"{v:9.1f}" if v is not None else "        -" for v in (p50, p99, top)]
        done = f"{len(self.latencies_ms):>5}/{self.count:<5}"
        return f"{self.mode:<22} {self.measure:<16} {done} " + " ".join(cells)


class QueuePopper(threading.Thread):
    """BRPOPs one partition queue and notes when each delivery id's message arrived."""

    def __init__(self, redis_url: str, key: str) -> None:
        super().__init__(daemon=True, name="popper")
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.key = key
        self.arrived: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            item: Any = self.client.brpop([self.key], timeout=1)
            if item is None:
                continue
            at = time.time()
            message = json.loads(item[1])
            body = json.loads(base64.b64decode(message["body"]))
            for delivery_id in body[0][0]:
                self.arrived.setdefault(delivery_id, at)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.client.close()


def at_least(measure: Callable[[], int], count: int) -> Callable[[], bool]:
    return lambda: measure() >= count


def change_rows(sessions: sessionmaker[Any], ids: Sequence[int], rate: float) -> dict[int, float]:
    """Set a new status on each row, one transaction each, at *rate*/s; commit time per row."""
    committed: dict[int, float] = {}
    started = time.monotonic()
    for n, row_id in enumerate(ids):
        pause = started + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        with sessions() as session:
            row = session.get(CrewRow, row_id)
            assert row is not None
            row.status = "verified"
            session.commit()
        committed[row_id] = time.time()
    return committed


def retire(hl: Hookline, delivery_ids: list[str]) -> None:
    """Mark deliveries whose messages the benchmark consumed as done, so no sweeper re-sends them."""
    with hl.engine.begin() as connection:
        connection.execute(text("UPDATE deliveries SET state = 'succeeded', succeeded_at = now() "
                                "WHERE id = ANY(:ids)"), {"ids": delivery_ids})


def received_all(sink: Sink, ours: list[tuple[str, str, int]]) -> bool:
    if int(sink.get("/count")["unique"]) < len(ours):
        return False
    seen = sink.get("/records")["first_seen"]
    return all(e in seen for _d, e, _r in ours)


def event_rows(hl: Hookline, ids: Sequence[int]) -> list[tuple[str, str, int]]:
    """``(delivery id, event id, row id)`` of the deliveries written for rows *ids*."""
    with hl.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT d.id, e.id, (e.payload->>'row')::int FROM deliveries d "
            "JOIN events e ON e.id = d.event_id WHERE (e.payload->>'row')::int BETWEEN :low AND :high"),
            {"low": min(ids), "high": max(ids)}).all()
    return [(str(a), str(b), int(c)) for a, b, c in rows]


class Bench:
    """The database, the sink, the watched application and the child processes of one run."""

    def __init__(self, args: argparse.Namespace, hl: Hookline, sink: Sink, workdir: Path,
                 groups: list[Group]) -> None:
        self.args = args
        self.hl = hl
        self.sink = sink
        self.workdir = workdir
        self.groups = groups
        self.env = child_env(hl.settings)
        admin.create_tenant(hl.sessions, "acme")
        endpoint = admin.add_endpoint(hl.sessions, hl.catalogue, tenant="acme", url=sink.url("/hook"),
                                      events=["crew.status.changed"], policy=hl.egress_policy).endpoint
        self.queue_key = hl.settings.broker_key_prefix + partition_queue(
            partition_for(endpoint.id, hl.settings.partitions))
        feed = ChangeFeed.for_hookline(hl)
        feed.watch(CrewRow, attributes=["status"], event_type="crew.status.changed",
                   fields={"row": "id"}, recipients=["acme"])
        self.sessions = sessionmaker(hl.engine)
        feed.install(self.sessions)
        self.next_id = 0

    def start(self, name: str, argv: list[str]) -> Group:
        group = Group(name, [sys.executable, "-m", "app.cli", *argv], self.env,
                      self.workdir / f"{len(self.groups)}-{name.split()[0]}.log")
        self.groups.append(group)
        return group

    def changes(self, count: int) -> tuple[dict[int, float], list[tuple[str, str, int]]]:
        """*count* fresh rows, each changed once at the set rate; commit times, and the deliveries written."""
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        with self.sessions.begin() as session:  # inserts are not watched
            session.add_all(CrewRow(id=i) for i in ids)
        committed = change_rows(self.sessions, ids, self.args.rate)
        wait_for(at_least(lambda: len(event_rows(self.hl, ids)), len(ids)), self.args.timeout,
                 f"{len(ids)} relayed events")
        return committed, event_rows(self.hl, ids)

    def measure(self, mode: str, options: list[str]) -> list[Figures]:
        args = self.args
        producer = self.start(f"producer {mode}", ["producer", *options])
        wait_for(lambda: READY_MESSAGE in producer.tail(100_000) or not producer.alive(), 30,
                 f"the producer ({mode}) to be ready")
        if not producer.alive():
            raise BenchError(f"the producer exited:\n{producer.tail()}")

        log(f"{mode}: commit -> enqueue, {args.events} changes at {args.rate:g}/s, no worker")
        popper = QueuePopper(REDIS_URL, self.queue_key)
        popper.start()
        try:
            if args.warmup:
                _, warm = self.changes(args.warmup)
                wait_for(lambda: all(d in popper.arrived for d, _e, _r in warm), args.timeout, "warm-up")
                retire(self.hl, [d for d, _e, _r in warm])
            committed, ours = self.changes(args.events)
            wait_for(lambda: all(d in popper.arrived for d, _e, _r in ours), args.timeout,
                     f"{len(ours)} messages on {self.queue_key}")
        finally:
            popper.stop()
        enqueued = Figures(mode, "commit->enqueue", args.events, [
            (popper.arrived[d] - committed[row]) * 1000 for d, _e, row in ours if d in popper.arrived])
        retire(self.hl, [d for d, _e, _r in ours])

        log(f"{mode}: commit -> receipt, {args.events} changes at {args.rate:g}/s, worker "
            f"({args.pool}, concurrency {args.concurrency})")
        worker = self.start("worker", ["worker", "--beat", f"--hostname=benchpl{len(self.groups)}@%h"])
        wait_workers(self.hl.sender, [worker], 60)
        if args.warmup:  # every pool process or thread opens its connections on its first task
            _, warm = self.changes(args.warmup)
            wait_for(lambda: received_all(self.sink, warm), args.timeout, "warm-up receipts")
        self.sink.get("/reset")
        committed, ours = self.changes(args.events)
        wait_for(lambda: received_all(self.sink, ours), args.timeout, f"{len(ours)} receipts")
        seen = self.sink.get("/records")["first_seen"]
        received = Figures(mode, "commit->receipt", args.events, [
            (seen[e] - committed[row]) * 1000 for _d, e, row in ours if e in seen])
        worker.stop()
        producer.stop()
        return [enqueued, received]


def run(args: argparse.Namespace) -> list[Figures]:
    prefix = f"hookline-bench-pl-{uuid.uuid4().hex[:8]}:"
    groups: list[Group] = []
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="hookline-bench-pl-") as tmp, bench_database(PG_ADMIN_URL) as pg:
        workdir = Path(tmp)
        settings = get_settings(database_url=pg, broker_url=REDIS_URL, broker_key_prefix=prefix,
                                data_dir=workdir, log_level="WARNING", worker_pool=args.pool,
                                worker_concurrency=args.concurrency, producer_batch=args.batch,
                                allow_http=True, egress_allow=["127.0.0.1/32"])
        hl = Hookline(settings)
        try:
            BenchBase.metadata.create_all(hl.engine)
            sink = Sink.start(workdir, child_env())
            groups.append(sink.group)
            bench = Bench(args, hl, sink, workdir, groups)
            results += bench.measure("listen (NOTIFY)", [])
            results += bench.measure(f"poll every {args.poll_interval:g}s",
                                     ["--no-listen", "--poll-interval", str(args.poll_interval)])
        finally:
            for group in reversed(groups):
                group.stop()
            hl.close()
            delete_keys(REDIS_URL, [prefix])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="changes per measurement (default 300)")
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second (default 50)")
    parser.add_argument("--batch", type=int, default=100, help="producer batch (default 100)")
    parser.add_argument("--poll-interval", type=float, default=0.5,
                        help="the polling producer's interval, seconds (default 0.5)")
    parser.add_argument("--pool", choices=["threads", "prefork"], default="threads")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50,
                        help="uncounted changes before each measurement (default 50)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a run to finish")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        results = run(args)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(f"\nChange-feed latency  events={args.events} @ {args.rate:g}/s (after {args.warmup} warm-up)  "
          f"producer batch={args.batch}  worker={args.pool} c{args.concurrency}  "
          f"({time.monotonic() - started:.0f} s)")
    print(f"{'producer wakes on':<22} {'measure':<16} {'n/sent':>11} "
          f"{'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print("-" * 80)
    for figures in results:
        print(figures.row())
    incomplete = [f for f in results if len(f.latencies_ms) < f.count]
    return 1 if incomplete else 0


if __name__ == "__main__":
    raise SystemExit(main())
