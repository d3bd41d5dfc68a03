"""Hookline delivery benchmark: end-to-end deliveries/s and publish-to-receipt latency.

What it measures, on the real Redis (redis://127.0.0.1:6379/0) and the real PostgreSQL
(a fresh ``hookline_bench_<hex>`` database, dropped at the end), against a fast loopback
receiver running in its own process (``bench/sink.py``):

1. **Hookline throughput**: 4 tenants with one endpoint each (on distinct partitions
   where possible), K ``python -m app.cli worker`` processes (threads pool by default,
   concurrency C; ``--beat`` on the first). The benchmark process publishes N events (~1 KB JSON,
   round-robin over the tenants, so deliveries == events) through ``Hookline.publish``
   as fast as it can. Reported: deliveries/s = N / (last first-receipt - first publish),
   publish-to-receipt latency p50/p99, and the publish loop's own rate.
2. **Hookline latency at a fixed rate**: ``--rate`` events/s (default 100/s for 1,000
   events), p50/p99 publish-to-receipt.
3. **Naive baseline** (``bench/naive.py``): one Celery task per event doing a bare
   ``requests.post``, no database, prefork concurrency 2; the same two measurements.

Latency is the receiver's ``time.time()`` at the first receipt of an event minus the
publisher's ``time.time()`` just before it published that event (same machine clock).
A short warm-up precedes each system's runs and is not counted. CPU seconds per
delivery are split into workers / publisher / receiver / everything else (PostgreSQL,
Redis, the OS) from /proc, to show where the cores went.

Run: ``.venv/bin/python bench/run.py [--events N] [--workers K] [--concurrency C]``.
Prints a table, writes the figures to bench/results.json, and exits 1 if any run did
not complete (every wait is bounded and says "timed out: got X of N"). All traffic
stays on 127.0.0.1; every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import admin, db  # noqa: E402
from app.client import Hookline  # noqa: E402
from app.partitioning import partition_for  # noqa: E402
from config.settings import Settings, get_settings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
EVENT_TYPE = "crew.status.changed"
TENANTS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A setup step failed; the message says which."""


# -- small helpers ------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def require_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"{what} must be on 127.0.0.1, not {host!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of *values*, or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


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


# -- processes ----------------------------------------------------------------------------
class Group:
    """A child process in its own session (process group), logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        handle = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=handle,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole group, SIGKILL it after *grace* seconds."""
        if self.alive():
            try:
                os.killpg(self.pgid, signal.SIGTERM)
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {grace:.0f} s: SIGKILL")
            except ProcessLookupError:
                pass
        with suppress(ProcessLookupError, PermissionError):  # leftovers: pool children, beat
            os.killpg(self.pgid, signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.pgid}) did not exit after SIGKILL")


def group_cpu_seconds(pgids: set[int]) -> float:
    """User+system CPU seconds of every live process in the process groups *pgids*."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) in pgids:  # fields[0] is the state; [2] pgrp; [11], [12] utime, stime
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, all cores added, since boot."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSample:
    machine: float
    workers: float
    receiver: float
    publisher: float

    @classmethod
    def take(cls, workers: list[Group], receiver: Group) -> CpuSample:
        return cls(machine=machine_busy_seconds(),
                   workers=group_cpu_seconds({w.pgid for w in workers}),
                   receiver=group_cpu_seconds({receiver.pgid}),
                   publisher=time.process_time())

    def per_delivery_ms(self, later: CpuSample, deliveries: int) -> dict[str, float]:
        if deliveries <= 0:
            return {}
        parts = {
            "workers": later.workers - self.workers,
            "publisher": later.publisher - self.publisher,
            "receiver": later.receiver - self.receiver,
        }
        parts["other"] = max(0.0, (later.machine - self.machine) - sum(parts.values()))
        parts["total"] = later.machine - self.machine
        return {k: round(v / deliveries * 1000, 3) for k, v in parts.items()}


# -- the receiver process -----------------------------------------------------------------
class Sink:
    """Client for bench/sink.py's control endpoints."""

    def __init__(self, group: Group, port: int) -> None:
        self.group = group
        self.port = port

    @classmethod
    def start(cls, workdir: Path, env: dict[str, str]) -> Sink:
        port = free_port()
        group = Group("receiver", [sys.executable, str(BENCH / "sink.py"), "--port", str(port)],
                      env, workdir / "receiver.log")
        sink = cls(group, port)

        def up() -> bool:
            if not group.alive():
                raise BenchError(f"the receiver exited:\n{group.tail()}")
            try:
                sink.get("/count")
            except OSError:
                return False
            return True

        wait_for(up, 15, "the receiver to listen", interval=0.05)
        return sink

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            data: dict[str, Any] = json.loads(response.read())
            return data
        finally:
            conn.close()


# -- one measured run ---------------------------------------------------------------------
@dataclass
class RunResult:
    name: str
    events: int
    completed: bool = False
    message: str = ""
    received: int = 0
    duplicates: int = 0
    connections: int = 0
    publish_seconds: float = 0.0
    publish_rate: float = 0.0
    target_rate: float | None = None
    deliveries_per_s: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    drain_after_publish_s: float | None = None
    cpu_ms_per_delivery: dict[str, float] = field(default_factory=dict)


Sender = Callable[[int], tuple[str, float]]


def publish_loop(send: Sender, count: int, rate: float | None) -> tuple[dict[str, float], float]:
    """Call *send* *count* times, as fast as possible or paced at *rate*/s.

    Returns {event id: publish time} and the loop's duration in seconds.
    """
    published: dict[str, float] = {}
    started = time.time()
    interval = 1.0 / rate if rate else 0.0
    for i in range(count):
        if rate:
            delay = started + i * interval - time.time()
            if delay > 0:
                time.sleep(delay)
        event_id, at = send(i)
        published[event_id] = at
    return published, time.time() - started


def wait_received(sink: Sink, expected: int, timeout: float, label: str) -> tuple[bool, int]:
    """Poll the receiver until it has *expected* unique ids; (done, unique) when it stops."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 5
    unique = 0
    while time.monotonic() < deadline:
        unique = int(sink.get("/count")["unique"])
        if unique >= expected:
            return True, unique
        if time.monotonic() >= next_report:
            log(f"{label}: received {unique} of {expected}")
            next_report += 5
        time.sleep(0.1)
    return False, unique


def measured_run(name: str, sink: Sink, send: Sender, count: int, *, rate: float | None,
                 timeout: float, cpu: Callable[[], CpuSample],
                 start_consumers: Callable[[], None] | None = None) -> RunResult:
    """Publish *count* events with *send* and measure what the receiver saw.

    With *start_consumers* (a backlog drain), the workers are started only after
    everything is published: deliveries/s is then taken between the first and the last
    receipt, CPU from when the workers answered a ping, and latency is not reported
    (it would only say how long the backlog waited).
    """
    result = RunResult(name=name, events=count, target_rate=rate)
    sink.get("/reset")
    before = cpu()
    log(f"{name}: publishing {count} events" + (f" at {rate:g}/s" if rate else " flat out"))
    published, duration = publish_loop(send, count, rate)
    result.publish_seconds = round(duration, 3)
    result.publish_rate = round(count / duration, 1) if duration > 0 else 0.0
    log(f"{name}: published {count} in {duration:.2f} s ({result.publish_rate}/s); waiting")
    already = 0
    if start_consumers is not None:
        start_consumers()
        before = cpu()
        already = int(sink.get("/count")["unique"])
    done, _ = wait_received(sink, count, timeout, name)
    after = cpu()
    records = sink.get("/records")
    first_seen: dict[str, float] = records["first_seen"]
    arrived = {eid: first_seen[eid] for eid in published if eid in first_seen}
    result.received = len(arrived)
    result.duplicates = int(records["duplicates"])
    result.connections = int(records["connections"])
    result.completed = done and result.received == count
    if not result.completed:
        result.message = (f"timed out: got {result.received} of {count} deliveries "
                          f"within {timeout:g} s after publishing")
        log(f"{name}: {result.message}")
    if arrived and start_consumers is None:
        latencies = [(arrived[eid] - published[eid]) * 1000 for eid in arrived]
        result.latency_ms = {q: (round(v, 2) if (v := percentile(latencies, p)) is not None
                                 else None)
                             for q, p in (("p50", 50), ("p99", 99), ("max", 100))}
        span = max(arrived.values()) - min(published.values())
        if result.completed and span > 0:
            result.deliveries_per_s = round(count / span, 1)
        result.drain_after_publish_s = round(
            max(arrived.values()) - (min(published.values()) + duration), 3)
    elif len(arrived) > 1:
        span = max(arrived.values()) - min(arrived.values())
        if result.completed and span > 0:
            result.deliveries_per_s = round((count - 1) / span, 1)
    result.cpu_ms_per_delivery = before.per_delivery_ms(after, result.received - already)
    return result


# -- PostgreSQL and Redis -----------------------------------------------------------------
@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A fresh, migrated database; dropped WITH (FORCE) on the way out."""
    name = f"hookline_bench_{uuid.uuid4().hex[:10]}"
    admin_conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    try:
        admin_conn.execute(f'CREATE DATABASE "{name}"')
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        try:
            log(f"database {name}: migrating")
            db.upgrade(get_settings(), url=url.replace("postgresql://", "postgresql+psycopg://"))
            yield url
        finally:
            admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"database {name}: dropped")
    finally:
        admin_conn.close()


def delete_keys(redis_url: str, prefixes: list[str]) -> int:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    deleted = 0
    try:
        for prefix in prefixes:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                deleted += int(client.delete(key))  # type: ignore[arg-type]
    finally:
        client.close()
    return deleted


def child_env(settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """This environment minus HOOKLINE_*, plus the settings as HOOKLINE_* (as the tests do)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    if settings is not None:
        env.update(settings.as_environment())
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_workers(app: Any, groups: list[Group], timeout: float) -> None:
    """Until every worker answers a broadcast ping (their logs say nothing at WARNING)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for group in groups:
            if not group.alive():
                raise BenchError(f"{group.name} exited during start-up:\n{group.tail()}")
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= len(groups):
            return
    raise BenchError(f"timed out: {len(groups)} worker(s) did not all answer a ping within "
                     f"{timeout:.0f} s\n" + "\n".join(g.tail(800) for g in groups))


# -- the two systems ----------------------------------------------------------------------
def hookline_runs(args: argparse.Namespace, pg_url: str, prefix: str, workdir: Path,
                  sink: Sink, registry: list[Group], report: dict[str, Any]) -> list[RunResult]:
    """Start the Hookline workers; warm-up, throughput, latency and backlog-drain runs."""
    groups: list[Group] = []  # the workers running now
    settings = get_settings(
        database_url=pg_url, broker_url=args.redis_url, broker_key_prefix=prefix,
        data_dir=workdir, log_level="WARNING", worker_concurrency=args.concurrency,
        worker_pool=args.pool,
        # The sink is plain http on 127.0.0.1, which the egress policy refuses by default.
        allow_http=True, egress_allow=["127.0.0.1/32"],
    )
    hl = Hookline(settings)
    env = child_env(settings)
    tag = prefix.rstrip(":").rsplit("-", 1)[-1]
    generation = 0

    def start_workers() -> None:
        nonlocal generation
        for i in range(args.workers):
            argv = [sys.executable, "-m", "app.cli", "worker",
                    f"--hostname=bench{i}g{generation}-{tag}@%h"]
            if i == 0:
                argv.append("--beat")
            groups.append(Group(f"hookline worker {i}", argv, env,
                                workdir / f"worker{i}-{generation}.log"))
            registry.append(groups[-1])
        generation += 1
        log(f"hookline: starting {args.workers} worker(s), {args.pool} pool, "
            f"concurrency {args.concurrency}")
        wait_workers(hl.sender, groups, 60)

    def stop_workers() -> None:
        for group in groups:
            group.stop()
        groups.clear()

    try:
        tenants = setup_endpoints(hl, sink, settings.partitions)
        report["hookline_endpoints"] = tenants
        tenant_ids = [t["tenant"] for t in tenants]
        start_workers()

        def send(i: int) -> tuple[str, float]:
            at = time.time()
            result = hl.publish(tenant_ids[i % len(tenant_ids)], EVENT_TYPE, payload(i, at))
            return result.event_id, at

        def cpu() -> CpuSample:
            return CpuSample.take(groups, sink.group)

        results = run_pair("hookline", args, sink, send, cpu)
        if args.drain_events > 0 and all(r.completed for r in results):
            stop_workers()
            results.append(measured_run("hookline drain", sink, send, args.drain_events,
                                        rate=None, timeout=args.timeout, cpu=cpu,
                                        start_consumers=start_workers))
        with hl.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT state, count(*) FROM deliveries GROUP BY state")).all()
        report["hookline_delivery_states"] = {str(state): int(n) for state, n in rows}
        return results
    finally:
        stop_workers()
        hl.close()


def setup_endpoints(hl: Hookline, sink: Sink, partitions: int) -> list[dict[str, Any]]:
    """One tenant per endpoint; endpoints on distinct partitions where possible.

    Endpoint ids are random, so an endpoint landing on a partition already used is
    disabled and another one added (at most 20 tries per tenant).
    """
    run = uuid.uuid4().hex[:6]
    used: set[int] = set()
    tenants: list[dict[str, Any]] = []
    for i in range(TENANTS):
        tenant = admin.create_tenant(hl.sessions, f"bench-{run}-{i}")
        for attempt in range(20):
            created = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant.id,
                                         url=sink.url(f"/hookline/{i}"), events=[EVENT_TYPE],
                                         policy=hl.egress_policy)
            partition = partition_for(created.endpoint.id, partitions)
            if partition not in used or len(used) >= partitions or attempt == 19:
                used.add(partition)
                tenants.append({"tenant": tenant.id, "endpoint": created.endpoint.id,
                                "partition": partition})
                break
            admin.set_endpoint_enabled(hl.sessions, created.endpoint.id, False)
    return tenants


def naive_runs(args: argparse.Namespace, prefix: str, workdir: Path, sink: Sink,
               registry: list[Group]) -> list[RunResult]:
    """Start the naive worker, run warm-up, throughput and latency, stop the worker."""
    from bench.naive import DELIVER_TASK, create_app

    groups: list[Group] = []
    app = create_app(args.redis_url, prefix)
    try:
        env = child_env(NAIVE_BROKER_URL=args.redis_url, NAIVE_KEY_PREFIX=prefix)
        tag = prefix.rstrip(":").rsplit("-", 1)[-1]
        argv = [sys.executable, "-m", "celery", "-A", "bench.naive", "worker", "--pool=prefork",
                f"--concurrency={args.naive_concurrency}", "--loglevel=WARNING",
                f"--hostname=naive-{tag}@%h"]
        groups.append(Group("naive worker", argv, env, workdir / "naive.log"))
        registry.append(groups[-1])
        log(f"naive: starting a prefork worker, concurrency {args.naive_concurrency}")
        wait_workers(app, groups, 60)
        task = app.tasks[DELIVER_TASK]
        url = sink.url("/naive")

        def send(i: int) -> tuple[str, float]:
            at = time.time()
            event_id = f"nv_{uuid.uuid4().hex}"
            body = json.dumps({"schema_version": 1, "event_id": event_id,
                               "event_type": EVENT_TYPE,
                               "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                               "partner_id": "bench", "data": payload(i, at)},
                              separators=(",", ":"))
            task.apply_async(args=(url, body, event_id))
            return event_id, at

        def cpu() -> CpuSample:
            return CpuSample.take(groups, sink.group)

        return run_pair("naive", args, sink, send, cpu)
    finally:
        for group in groups:
            group.stop()
        app.close()


def run_pair(system: str, args: argparse.Namespace, sink: Sink, send: Sender,
             cpu: Callable[[], CpuSample]) -> list[RunResult]:
    """Warm-up, then the throughput run, then the fixed-rate latency run."""
    if args.warmup:
        warm = measured_run(f"{system} warm-up", sink, send, args.warmup, rate=None,
                            timeout=args.timeout, cpu=cpu)
        if not warm.completed:
            raise BenchError(f"{system} warm-up {warm.message}")
    results = [measured_run(f"{system} throughput", sink, send, args.events, rate=None,
                            timeout=args.timeout, cpu=cpu)]
    if results[0].completed and args.rate_events > 0:
        time.sleep(1.0)  # let stragglers and the CPU settle
        results.append(measured_run(f"{system} @{args.rate:g}/s", sink, send, args.rate_events,
                                    rate=args.rate, timeout=args.timeout, cpu=cpu))
    return results


# -- output ---------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(report: dict[str, Any]) -> None:
    runs: list[dict[str, Any]] = report["runs"]
    s = report["settings"]
    print()
    print(f"Hookline benchmark  nproc={report['machine']['nproc']}  "
          f"workers={s['workers']} concurrency={s['concurrency']} ({s['pool']})  events={s['events']}  "
          f"rate run={s['rate_events']} @ {s['rate']:g}/s  naive=prefork c{s['naive_concurrency']}")
    header = (f"{'run':<22}{'done':>6}{'recv':>7}{'dup':>5}{'conns':>7}{'publish/s':>11}"
              f"{'deliv/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'cpu ms/dlv':>12}")
    print(header)
    print("-" * len(header))
    for r in runs:
        lat = r["latency_ms"]
        print(f"{r['name']:<22}{'yes' if r['completed'] else 'NO':>6}{r['received']:>7}"
              f"{r['duplicates']:>5}{r['connections']:>7}{fmt(r['publish_rate']):>11}"
              f"{fmt(r['deliveries_per_s']):>10}{fmt(lat.get('p50')):>9}{fmt(lat.get('p99')):>9}"
              f"{fmt(lat.get('max')):>9}{fmt(r['cpu_ms_per_delivery'].get('total'), 2):>12}")
    print()
    print("CPU ms per delivery (all cores): "
          + "; ".join(f"{r['name']}: " + ", ".join(f"{k} {v}" for k, v in
                                                   r["cpu_ms_per_delivery"].items()
                                                   if k != "total")
                      for r in runs))
    summary = report["summary"]
    print(f"hookline {fmt(summary['hookline_deliveries_per_s'])} deliveries/s vs naive "
          f"{fmt(summary['naive_deliveries_per_s'])} deliveries/s: ratio "
          f"{fmt(summary['ratio'], 2)}")
    if summary["hookline_drain_deliveries_per_s"] is not None:
        print(f"hookline workers alone (backlog drain, publisher idle): "
              f"{fmt(summary['hookline_drain_deliveries_per_s'])} deliveries/s")
    for r in runs:
        if r["message"]:
            print(f"{r['name']}: {r['message']}")
    for failure in report["failures"]:
        print(f"FAILED: {failure}")


def find(runs: list[RunResult], name: str) -> RunResult | None:
    return next((r for r in runs if r.name == name), None)


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Hookline vs naive Celery delivery benchmark.")
    parser.add_argument("--events", type=int, default=2000, help="Events per throughput run.")
    parser.add_argument("--workers", type=int, default=2, help="Hookline worker processes.")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="Pool size (threads or processes) per Hookline worker.")
    parser.add_argument("--pool", choices=["threads", "prefork"], default="threads",
                        help="Hookline worker pool (HOOKLINE_WORKER_POOL).")
    parser.add_argument("--rate", type=float, default=100.0, help="Events/s of the latency runs.")
    parser.add_argument("--rate-events", type=int, default=1000,
                        help="Events per latency run (0 skips them).")
    parser.add_argument("--drain-events", type=int, default=None,
                        help="Events in the Hookline backlog-drain run (default --events; 0 skips).")
    parser.add_argument("--naive-concurrency", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=100, help="Uncounted events before runs.")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="Seconds to wait for all deliveries after publishing, per run.")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-hookline", action="store_true")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    parser.add_argument("--keep-logs", action="store_true",
                        help="Keep the worker and receiver logs (their directory is printed).")
    args = parser.parse_args(argv)
    if args.drain_events is None:
        args.drain_events = args.events
    if args.events < 1 or args.workers < 1 or args.concurrency < 1 or args.rate <= 0:
        parser.error("--events, --workers, --concurrency and --rate must be positive")
    require_loopback(args.redis_url, "Redis")
    require_loopback(args.pg_admin_url, "PostgreSQL")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks run
    run_tag = uuid.uuid4().hex[:8]
    hookline_prefix = f"hookline-bench-{run_tag}:"
    naive_prefix = f"hookline-bench-naive-{run_tag}:"
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    groups: list[Group] = []
    runs: list[RunResult] = []
    failures: list[str] = []
    report: dict[str, Any] = {}
    sink: Sink | None = None
    started = time.time()
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=3).ping()
        sink = Sink.start(workdir, child_env())
        if not args.skip_hookline:
            try:
                with bench_database(args.pg_admin_url) as pg_url:
                    runs += hookline_runs(args, pg_url, hookline_prefix, workdir, sink, groups,
                                          report)
            except BenchError as exc:
                failures.append(f"hookline: {exc}")
                log(f"hookline: {exc}")
        if not args.skip_naive:
            try:
                runs += naive_runs(args, naive_prefix, workdir, sink, groups)
            except BenchError as exc:
                failures.append(f"naive: {exc}")
                log(f"naive: {exc}")
    finally:
        for group in groups:
            group.stop()
        if sink is not None:
            sink.group.stop(grace=3)
        try:
            removed = delete_keys(args.redis_url, [hookline_prefix, naive_prefix])
            log(f"redis: deleted {removed} key(s) under the run's prefixes")
        except redis.RedisError as exc:
            log(f"redis: could not delete the run's keys: {exc}")
        if args.keep_logs:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    failures += [f"{r.name}: {r.message}" for r in runs if not r.completed]
    per_system = 2 if args.rate_events > 0 else 1
    expected = ((0 if args.skip_hookline else per_system + (args.drain_events > 0))
                + (0 if args.skip_naive else per_system))
    if len(runs) < expected and not failures:
        failures.append(f"only {len(runs)} of {expected} runs happened")
    hook = find(runs, "hookline throughput")
    naive = find(runs, "naive throughput")
    drain = find(runs, "hookline drain")
    hook_rate = hook.deliveries_per_s if hook else None
    naive_rate = naive.deliveries_per_s if naive else None
    report.update({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"events": args.events, "workers": args.workers,
                     "concurrency": args.concurrency, "pool": args.pool,
                     "rate": args.rate, "rate_events": args.rate_events,
                     "drain_events": args.drain_events,
                     "warmup": args.warmup, "naive_concurrency": args.naive_concurrency,
                     "naive_pool": "prefork", "tenants_endpoints": TENANTS},
        "summary": {"hookline_deliveries_per_s": hook_rate,
                    "hookline_drain_deliveries_per_s": drain.deliveries_per_s if drain else None,
                    "naive_deliveries_per_s": naive_rate,
                    "ratio": round(hook_rate / naive_rate, 3) if hook_rate and naive_rate
                    else None},
        "runs": [asdict(r) for r in runs],
        "failures": failures,
        "completed": not failures,
    })
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nfigures written to {args.results} ({report['wall_seconds']} s wall)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
