"""Hookline delivery benchmark: every figure of the delivery-engine issue in one run.

On the real Redis (redis://127.0.0.1:6379/0) and the real PostgreSQL (fresh
``hookline_bench_<hex>`` databases, dropped at the end), against a loopback receiver
in its own process (``bench/sink.py``), Hookline side by side with the naive
one-task-per-event Celery sender (``bench/naive.py``). Sections (``--only`` picks some):

* ``throughput``: N events published flat out until every one is delivered (for
  Hookline: until PostgreSQL has N more deliveries in state ``succeeded``). Hookline
  through ``publish_many`` (when the client has it) and through one ``publish()`` per
  event; the naive sender through ``apply_async``.
* ``latency``: events paced at ``--rate``/s, one ``publish()`` each: publish-to-receipt
  p50/p99.
* ``drain``: workers stopped, N events published, workers started: the workers' own
  capacity, first to last receipt; for both systems.
* ``memory``: ``--memory-events`` deliveries to receiver paths that answer 503; each
  worker's RSS (its whole process group) and Redis memory before publishing and once
  95 % have had a first attempt (bounded).
* ``isolation``: 10 endpoints; healthy, then one of them black-holed (its requests are
  never answered) while it gets 10 % of the events: the other nine's deliveries/s and
  p99 in both phases.
* ``scale``: the throughput figure with each worker count of ``--scale``.

Every run also splits machine-wide CPU per delivery into workers, publisher,
PostgreSQL, Redis, receiver and the rest, from /proc.

Run: ``.venv/bin/python bench/run.py [--only throughput,latency] [--events N]``. Prints
the tables and a final list of figures against the issue's targets, writes them to
bench/results.json, and exits 1 if a run failed. Every wait is bounded; all traffic
stays on 127.0.0.1; every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import report as output  # noqa: E402
from bench.harness import (  # noqa: E402
    BENCH,
    PG_ADMIN_URL,
    REDIS_URL,
    BenchError,
    Group,
    RedisMemory,
    Sink,
    child_env,
    delete_keys,
    group_rss,
    log,
    percentile,
    poll_until,
    require_loopback,
)
from bench.systems import HooklineSystem, NaiveSystem, Route  # noqa: E402

SECTIONS = ("throughput", "latency", "drain", "memory", "isolation", "scale")
TENANTS = 4
ISOLATION_ENDPOINTS = 10
#: The black-holed endpoint of the isolation section (it gets every 10th event).
HOLE = 0
#: The memory section waits until this share of deliveries has had a first attempt.
MEMORY_ATTEMPTED = 0.95

System = HooklineSystem | NaiveSystem


# -- one measured run ---------------------------------------------------------------------
@dataclass
class RunResult:
    name: str
    system: str
    section: str
    path: str  # how events were published: batch, single, apply_async
    events: int
    workers: int = 0
    completed: bool = False
    message: str = ""
    received: int = 0
    duplicates: int = 0
    connections: int = 0
    publish_errors: int = 0
    publish_seconds: float = 0.0
    publish_rate: float = 0.0
    target_rate: float | None = None
    measured_events: int = 0  # the events the figures below are about (isolation: nine)
    measured_received: int = 0
    deliveries_per_s: float | None = None
    end_source: str = ""  # database (last succeeded_at) or receiver (last first receipt)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    latency_lower_bound: bool = False  # some measured events never arrived
    drain_after_publish_s: float | None = None
    cpu_ms_per_delivery: dict[str, float] = field(default_factory=dict)
    receiver: dict[str, int] = field(default_factory=dict)
    per_target: dict[str, dict[str, Any]] = field(default_factory=dict)


def always(_target: int) -> bool:
    return True


def latency_figures(values: list[float]) -> dict[str, float | None]:
    return {q: (round(v, 2) if (v := percentile(values, p)) is not None else None)
            for q, p in (("p50", 50), ("p99", 99), ("max", 100))}


def measured_run(system: System, sink: Sink, name: str, section: str, count: int, route: Route, *,
                 timeout: float, rate: float | None = None, batch: bool = False,
                 drain: bool = False, arrives: Callable[[int], bool] = always,
                 measured: Callable[[int], bool] = always, use_db: bool = True,
                 per_target: bool = False) -> RunResult:
    """Publish *count* events (event i to endpoint ``route(i)``) and measure what arrived.

    Waits (bounded by *timeout* after publishing) for every event whose endpoint
    *arrives* to reach the receiver and, for Hookline with *use_db*, for PostgreSQL to
    hold as many more ``succeeded`` deliveries. Figures are about the events whose
    endpoint is *measured*. With *drain*, the workers are started only after
    publishing: deliveries/s is then first to last delivery and latency is not reported.
    """
    path = "batch" if batch else ("single" if isinstance(system, HooklineSystem) else "apply_async")
    result = RunResult(name=name, system=system.name, section=section, path=path, events=count,
                       workers=len(system.groups) if not drain else 0, target_rate=rate)
    hookline_db = isinstance(system, HooklineSystem) and use_db
    db_base = system.succeeded()[0] if isinstance(system, HooklineSystem) and hookline_db else 0
    sink.get("/reset")
    before = system.cpu()
    log(f"{name}: publishing {count} events ({path})"
        + (f" at {rate:g}/s" if rate else " flat out"))
    pub = system.publish(count, route, rate=rate, batch=batch)
    result.publish_seconds = round(pub.seconds, 3)
    result.publish_rate = round(pub.count / pub.seconds, 1) if pub.seconds > 0 else 0.0
    result.publish_errors = pub.errors
    log(f"{name}: published {pub.count} in {pub.seconds:.2f} s ({result.publish_rate}/s); waiting")
    already = 0
    if drain:
        system.start_workers()
        result.workers = len(system.groups)
        before = system.cpu()
        already = sink.count()["unique"]
    expect = sum(1 for t in pub.target.values() if arrives(t))
    db_end: list[float | None] = [None]

    def check() -> tuple[bool, str]:
        unique = sink.count()["unique"]
        if unique < expect:
            return False, f"received {unique} of {expect}"
        if isinstance(system, HooklineSystem) and hookline_db:
            done, last = system.succeeded()
            if done - db_base < expect:
                return False, f"received {unique}; {done - db_base} of {expect} succeeded in SQL"
            db_end[0] = last
        return True, "done"

    done, line = poll_until(check, timeout, name)
    waited_until = time.time()
    after = system.cpu()
    counts = sink.count()
    first_seen = sink.first_seen()
    result.receiver = counts
    arrived = {eid: first_seen[eid] for eid in pub.at if eid in first_seen}
    result.received = len(arrived)
    result.duplicates = counts["duplicates"]
    result.connections = counts["connections"]
    result.completed = done and result.received >= expect and pub.errors == 0
    if not done:
        result.message = f"timed out: {line} within {timeout:g} s after publishing"
    elif pub.errors:
        result.message = f"{pub.errors} publish error(s), the first: {pub.first_error}"
    if result.message:
        log(f"{name}: {result.message}")

    ours = [eid for eid in pub.at if measured(pub.target[eid])]
    result.measured_events = len(ours)
    result.measured_received = sum(1 for eid in ours if eid in arrived)
    figures = rate_and_latency(ours, pub.at, arrived, waited_until, drain=drain,
                               db_end=db_end[0] if len(ours) == pub.count else None,
                               complete=result.completed)
    result.deliveries_per_s = figures["deliveries_per_s"]
    result.end_source = figures["end_source"]
    result.latency_ms = figures["latency_ms"]
    result.latency_lower_bound = figures["lower_bound"]
    if not drain and ours:
        end = figures["end"]
        result.drain_after_publish_s = round(end - (min(pub.at.values()) + pub.seconds), 3)
    if per_target:
        for target in sorted(set(pub.target.values())):
            mine = [eid for eid in pub.at if pub.target[eid] == target]
            one = rate_and_latency(mine, pub.at, arrived, waited_until, drain=drain, db_end=None,
                                   complete=all(eid in arrived for eid in mine))
            result.per_target[str(target)] = {
                "events": len(mine), "received": sum(1 for e in mine if e in arrived),
                "deliveries_per_s": one["deliveries_per_s"], "p99_ms": one["latency_ms"].get("p99")}
    result.cpu_ms_per_delivery = before.per_delivery_ms(after, result.received - already)
    return result


def rate_and_latency(ours: Sequence[str], published: dict[str, float], arrived: dict[str, float],
                     waited_until: float, *, drain: bool, db_end: float | None,
                     complete: bool) -> dict[str, Any]:
    """Deliveries/s and publish-to-receipt latency of the events *ours*.

    Complete: events / (last delivery - first publish), the last delivery being the
    database's last ``succeeded_at`` when given, else the last first receipt. Not
    complete: what arrived / (end of the wait - first publish), and the missing events
    count with the end of the wait as their receipt, so p99 is a lower bound. Drain:
    (events - 1) / (last - first delivery), no latency.
    """
    got = {eid: arrived[eid] for eid in ours if eid in arrived}
    out: dict[str, Any] = {"deliveries_per_s": None, "end_source": "", "latency_ms": {},
                           "lower_bound": False, "end": waited_until}
    if not ours:
        return out
    last = max(got.values()) if got else waited_until
    source = "receiver"
    if complete and db_end is not None and db_end > last:
        last, source = db_end, "database"
    if not complete:
        last, source = waited_until, "end of wait"
    out["end"], out["end_source"] = last, source
    if drain:
        if len(got) > 1:
            span = last - min(got.values())
            out["deliveries_per_s"] = round((len(got) - 1) / span, 1) if span > 0 else None
        return out
    span = last - min(published[eid] for eid in ours)
    out["deliveries_per_s"] = round(len(got) / span, 1) if span > 0 else None
    latencies = [(got.get(eid, waited_until) - published[eid]) * 1000 for eid in ours]
    out["latency_ms"] = latency_figures(latencies)
    out["lower_bound"] = len(got) < len(ours)
    return out


def warm_up(system: System, sink: Sink, args: argparse.Namespace, route: Route, label: str) -> None:
    if args.warmup <= 0:
        return
    warm = measured_run(system, sink, f"{label} warm-up", "warm-up", args.warmup, route,
                        timeout=args.timeout, use_db=False)
    if not warm.completed:
        raise BenchError(f"{label} warm-up {warm.message}")


def settle() -> None:
    time.sleep(1.0)  # let stragglers and the CPU settle between runs


# -- the sections -------------------------------------------------------------------------
@dataclass
class Context:
    args: argparse.Namespace
    sink: Sink
    workdir: Path
    registry: list[Group]
    prefixes: list[str]
    report: dict[str, Any]
    runs: list[RunResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def hookline(self, workers: int, label: str, **settings: Any) -> HooklineSystem:
        return HooklineSystem(self.args, self.sink, self.workdir, self.registry, self.prefixes,
                              workers=workers, label=label, settings=settings)

    def naive(self, label: str) -> NaiveSystem:
        return NaiveSystem(self.args, self.sink, self.workdir, self.registry, self.prefixes,
                           label=label)


def main_runs(ctx: Context, system: System, sections: set[str]) -> None:
    """Throughput (batch and single for Hookline), latency and backlog drain on one system.

    A run that did not complete leaves deliveries behind, so the runs after it are skipped.
    """
    args, sink = ctx.args, ctx.sink
    name = system.name
    system.add_targets([f"/{name}/{i}" for i in range(TENANTS)], distinct_partitions=True)
    if isinstance(system, HooklineSystem):
        ctx.report["hookline_endpoints"] = [asdict(t) for t in system.targets]
    system.start_workers()
    route: Route = lambda i: i % TENANTS  # noqa: E731
    warm_up(system, sink, args, route, name)
    plan: list[tuple[str, str, dict[str, Any]]] = []
    if "throughput" in sections:
        if isinstance(system, HooklineSystem):
            if system.has_batch:
                plan.append((f"{name} batch", "throughput", {"batch": True}))
            else:
                ctx.notes.append("hookline batch: n/a: publish_many not available")
            plan.append((f"{name} single", "throughput", {}))
        else:
            plan.append((f"{name} throughput", "throughput", {}))
    if "latency" in sections and args.rate_events > 0:
        plan.append((f"{name} @{args.rate:g}/s", "latency", {"rate": args.rate}))
    if "drain" in sections and args.drain_events > 0:
        plan.append((f"{name} drain", "drain", {"drain": True, "batch": system.has_batch}))
    for run_name, section, options in plan:
        if ctx.runs and ctx.runs[-1].system == name and not ctx.runs[-1].completed:
            ctx.notes.append(f"{run_name}: skipped, the run before it did not complete")
            continue
        count = {"latency": args.rate_events, "drain": args.drain_events}.get(section, args.events)
        if options.get("drain"):
            system.stop_workers()
        settle()
        ctx.runs.append(measured_run(system, sink, run_name, section, count, route,
                                     timeout=args.timeout, **options))
    if isinstance(system, HooklineSystem):
        ctx.report["hookline_delivery_states"] = system.states()


@dataclass
class MemoryResult:
    system: str
    path: str
    events: int
    published: int = 0
    publish_seconds: float = 0.0
    publish_cut_short: bool = False
    publish_errors: int = 0
    attempted: int = 0  # distinct events the receiver has answered 503
    attempts: int = 0  # 503 answers in all (first attempts and retries)
    wait_seconds: float = 0.0
    ended_by: str = ""
    workers: list[dict[str, Any]] = field(default_factory=list)
    redis: dict[str, int] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    message: str = ""

    @property
    def rss_increase(self) -> int:
        return sum(w["increase"] for w in self.workers)


def memory_run(ctx: Context, system: System) -> MemoryResult:
    """Publish --memory-events to receiver paths that answer 503, then read RSS and Redis.

    Waits until MEMORY_ATTEMPTED of the published events have had a first attempt, or
    no new attempt came for --memory-quiet seconds (an engine deferring the deliveries
    of a failing endpoint), or --memory-timeout after publishing.
    """
    args, sink = ctx.args, ctx.sink
    paths = [f"/{system.name}/mem/{i}" for i in range(TENANTS)]
    system.add_targets(paths, distinct_partitions=True)
    route: Route = lambda i: i % TENANTS  # noqa: E731
    result = MemoryResult(system=system.name, path="batch" if system.has_batch else
                          ("single" if isinstance(system, HooklineSystem) else "apply_async"),
                          events=args.memory_events)
    system.start_workers()
    warm_up(system, sink, args, route, f"{system.name} memory")
    for path in paths:
        sink.set_mode(path, "fail")
    sink.get("/reset")
    if args.warmup > 0:
        # The failure path too runs once before the baseline, so its one-off costs (first
        # exceptions, retry code) are not counted as growth. Its retries go on during the
        # measurement; they are events the receiver has seen, so they add attempts, not
        # attempted events.
        warm = system.publish(args.warmup, route, batch=system.has_batch)
        poll_until(lambda: (sink.count()["fail_unique"] >= warm.count, "failure warm-up"),
                   args.timeout, f"{system.name} memory failure warm-up")
    settle()
    base = sink.count()
    pgids = [g.pgid for g in system.groups]
    names = {g.pgid: g.name.removeprefix(f"{system.label} ") for g in system.groups}
    rss_before = group_rss(pgids)
    redis_before = RedisMemory.take(args.redis_url, [system.prefix])
    log(f"{system.name} memory: publishing {args.memory_events} events to 503 paths ({result.path})")
    budget_end = time.monotonic() + args.memory_timeout
    pub = system.publish(args.memory_events, route, batch=system.has_batch, deadline=budget_end)
    result.published, result.publish_errors = pub.count, pub.errors
    result.publish_seconds, result.publish_cut_short = round(pub.seconds, 2), pub.cut_short
    log(f"{system.name} memory: published {pub.count} in {pub.seconds:.1f} s; waiting for first "
        f"attempts")
    goal = base["fail_unique"] + math.ceil(MEMORY_ATTEMPTED * pub.count)
    peak = dict(rss_before)
    progress = {"attempts": -1, "since": time.monotonic()}
    ended = ["timed out"]

    def check() -> tuple[bool, str]:
        for pgid, rss in group_rss(pgids).items():
            peak[pgid] = max(peak[pgid], rss)
        counts = sink.count()
        line = (f"{counts['fail_unique'] - base['fail_unique']} of {pub.count} attempted "
                f"({counts['fail_requests'] - base['fail_requests']} 503s)")
        if counts["fail_unique"] >= goal:
            ended[0] = f"{MEMORY_ATTEMPTED:.0%} attempted"
            return True, line
        if counts["fail_requests"] != progress["attempts"]:
            progress["attempts"], progress["since"] = counts["fail_requests"], time.monotonic()
        elif time.monotonic() - progress["since"] >= args.memory_quiet:
            ended[0] = f"no new attempt for {args.memory_quiet:g} s"
            return True, line
        return False, line

    started = time.monotonic()
    poll_until(check, args.memory_timeout, f"{system.name} memory", interval=0.5)
    result.wait_seconds = round(time.monotonic() - started, 1)
    result.ended_by = ended[0]
    rss_after = group_rss(pgids)
    redis_after = RedisMemory.take(args.redis_url, [system.prefix])
    counts = sink.count()
    result.attempted = counts["fail_unique"] - base["fail_unique"]
    result.attempts = counts["fail_requests"] - base["fail_requests"]
    result.workers = [{"worker": names[p], "before": rss_before[p], "after": rss_after[p],
                       "increase": rss_after[p] - rss_before[p], "peak_increase": peak[p] - rss_before[p]}
                      for p in pgids]
    result.redis = {"used_before": redis_before.used_memory, "used_after": redis_after.used_memory,
                    "used_increase": redis_after.used_memory - redis_before.used_memory,
                    "keys_before": redis_before.keys, "keys_after": redis_after.keys,
                    "keys_bytes_before": redis_before.keys_bytes,
                    "keys_bytes_after": redis_after.keys_bytes}
    if isinstance(system, HooklineSystem):
        result.states = system.states()
    if pub.cut_short:
        result.message = (f"published {pub.count} of {args.memory_events} within "
                          f"{args.memory_timeout:g} s")
    if result.attempted + base["fail_unique"] < goal:
        result.message += ("; " if result.message else "") + (
            f"{result.attempted} of {pub.count} attempted ({result.ended_by})")
    if result.message:
        log(f"{system.name} memory: {result.message}")
    return result


def isolation_runs(ctx: Context) -> dict[str, Any]:
    """Ten endpoints: all healthy, then endpoint HOLE black-holed with 10 % of the events."""
    args, sink = ctx.args, ctx.sink
    out: dict[str, Any] = {"endpoints": ISOLATION_ENDPOINTS, "black_holed": HOLE,
                           "events_per_phase": args.isolation_events}
    with ctx.hookline(args.workers, "isolation") as system:
        paths = [f"/hookline/iso/{i}" for i in range(ISOLATION_ENDPOINTS)]
        targets = system.add_targets(paths, distinct_partitions=False)
        out["partitions"] = [t.partition for t in targets]
        out["sharing_hole_partition"] = [i for i, t in enumerate(targets)
                                         if i != HOLE and t.partition == targets[HOLE].partition]
        system.start_workers()
        route: Route = lambda i: i % ISOLATION_ENDPOINTS  # noqa: E731
        warm_up(system, sink, args, route, "isolation")
        nine: Callable[[int], bool] = lambda t: t != HOLE  # noqa: E731
        batch = system.has_batch
        settle()
        healthy = measured_run(system, sink, "isolation healthy", "isolation", args.isolation_events,
                               route, timeout=args.isolation_timeout, batch=batch, measured=nine,
                               use_db=False, per_target=True)
        ctx.runs.append(healthy)
        if not healthy.completed:
            ctx.notes.append("isolation black hole: skipped, the healthy phase did not complete")
            return out
        sink.set_mode(paths[HOLE], "hole")
        system.stop_grace = 3.0  # threads stuck on the black hole would hold a warm shutdown
        settle()
        holed = measured_run(system, sink, "isolation black hole", "isolation", args.isolation_events,
                             route, timeout=args.isolation_timeout, batch=batch, arrives=nine,
                             measured=nine, use_db=False, per_target=True)
        ctx.runs.append(holed)
        out["hole_requests"] = holed.receiver.get("hole_requests", 0)
        out["hole_open_at_end"] = holed.receiver.get("hole_open", 0)
    h, b = healthy.deliveries_per_s, holed.deliveries_per_s
    hp, bp = healthy.latency_ms.get("p99"), holed.latency_ms.get("p99")
    out["throughput_kept"] = round(b / h, 3) if h and b else None
    out["p99_ratio"] = round(bp / hp, 2) if hp and bp else None
    out["p99_ratio_lower_bound"] = holed.latency_lower_bound
    return out


def scale_runs(ctx: Context) -> list[dict[str, Any]]:
    """The throughput run with each worker count of --scale (reusing the throughput section's)."""
    args, sink = ctx.args, ctx.sink
    rows: list[dict[str, Any]] = []
    for workers in args.scale:
        done = [r for r in ctx.runs if r.section == "throughput" and r.system == "hookline"
                and r.workers == workers and r.events == args.events]
        reuse = next((r for r in done if r.path == "batch"), done[0] if done else None)
        if reuse is not None:
            rows.append({"workers": workers, "run": reuse.name, "path": reuse.path,
                         "deliveries_per_s": reuse.deliveries_per_s, "completed": reuse.completed,
                         "reused": True})
            continue
        with ctx.hookline(workers, f"scale {workers}") as system:
            system.add_targets([f"/hookline/scale/{i}" for i in range(TENANTS)],
                               distinct_partitions=True)
            system.start_workers()
            route: Route = lambda i: i % TENANTS  # noqa: E731
            warm_up(system, sink, args, route, f"scale {workers}")
            settle()
            run = measured_run(system, sink, f"hookline {workers} worker(s)", "scale", args.events,
                               route, timeout=args.timeout, batch=system.has_batch)
            ctx.runs.append(run)
            rows.append({"workers": workers, "run": run.name, "path": run.path,
                         "deliveries_per_s": run.deliveries_per_s, "completed": run.completed,
                         "reused": False})
    return rows


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Hookline vs naive Celery delivery benchmark.")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"Comma-separated sections to run (default all): {','.join(SECTIONS)}.")
    parser.add_argument("--events", type=int, default=2000,
                        help="Events per throughput run (and per scale run).")
    parser.add_argument("--workers", type=int, default=2, help="Hookline worker processes.")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="Pool size (threads or processes) per Hookline worker.")
    parser.add_argument("--pool", choices=["threads", "prefork"], default="threads",
                        help="Hookline worker pool (HOOKLINE_WORKER_POOL).")
    parser.add_argument("--rate", type=float, default=100.0, help="Events/s of the latency runs.")
    parser.add_argument("--rate-events", type=int, default=1000,
                        help="Events per latency run (0 skips them).")
    parser.add_argument("--drain-events", type=int, default=None,
                        help="Events in each backlog-drain run (default --events; 0 skips).")
    parser.add_argument("--memory-events", type=int, default=50000,
                        help="Deliveries to the 503 receiver in the memory section (0 skips it).")
    parser.add_argument("--memory-timeout", type=float, default=60.0,
                        help="Seconds the memory section may spend publishing, and then waiting "
                             "for first attempts, per system.")
    parser.add_argument("--memory-quiet", type=float, default=15.0,
                        help="Stop waiting for first attempts after this many seconds without one.")
    parser.add_argument("--isolation-events", type=int, default=500,
                        help="Events per isolation phase, over 10 endpoints (0 skips it).")
    parser.add_argument("--isolation-timeout", type=float, default=60.0,
                        help="Seconds to wait for the healthy endpoints' deliveries, per phase.")
    parser.add_argument("--scale", default="1,2", help="Worker counts of the scale section.")
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
    args.sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = args.sections - set(SECTIONS)
    if unknown or not args.sections:
        parser.error(f"--only takes a comma list of {', '.join(SECTIONS)}")
    try:
        args.scale = [int(n) for n in args.scale.split(",") if n.strip()]
    except ValueError:
        parser.error("--scale takes a comma list of worker counts, e.g. 1,2")
    if (args.events < 1 or args.workers < 1 or args.concurrency < 1 or args.rate <= 0
            or not args.scale or min(args.scale) < 1):
        parser.error("--events, --workers, --concurrency, --rate and --scale must be positive")
    if min(args.rate_events, args.drain_events, args.memory_events, args.isolation_events) < 0:
        parser.error("event counts cannot be negative")
    require_loopback(args.redis_url, "Redis")
    require_loopback(args.pg_admin_url, "PostgreSQL")
    return args


def run_sections(ctx: Context, failures: list[str]) -> None:
    args = ctx.args
    sections: set[str] = args.sections
    timing: dict[str, float] = ctx.report.setdefault("section_seconds", {})

    def attempt(label: str, body: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return body()
        except BenchError as exc:
            failures.append(f"{label}: {exc}")
            log(f"{label}: {exc}")
            return None
        except Exception as exc:  # an engine in flux: one broken section must not stop the others
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
            log(f"{label}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return None
        finally:
            timing[label] = round(time.monotonic() - started, 1)

    main_sections = sections & {"throughput", "latency", "drain"}
    if main_sections and not args.skip_hookline:
        def hookline_main() -> None:
            with ctx.hookline(args.workers, "hookline") as system:
                main_runs(ctx, system, main_sections)
        attempt("hookline", hookline_main)
    if main_sections and not args.skip_naive:
        def naive_main() -> None:
            with ctx.naive("naive") as system:
                main_runs(ctx, system, main_sections)
        attempt("naive", naive_main)
    if "memory" in sections and args.memory_events > 0:
        memory: list[dict[str, Any]] = ctx.report.setdefault("memory", [])
        if not args.skip_hookline:
            def hookline_memory() -> None:
                # Every delivery gets a real attempt and a retry: with the circuit breaker
                # at its default, the receivers' circuits would open and most deliveries
                # would wait deferred instead, which holds even less.
                with ctx.hookline(args.workers, "hookline memory",
                                  circuit_failure_threshold=1_000_000) as system:
                    memory.append(output.memory_dict(memory_run(ctx, system)))
            attempt("hookline memory", hookline_memory)
        if not args.skip_naive:
            def naive_memory() -> None:
                with ctx.naive("naive memory") as system:
                    memory.append(output.memory_dict(memory_run(ctx, system)))
            attempt("naive memory", naive_memory)
    if "isolation" in sections and args.isolation_events > 0 and not args.skip_hookline:
        ctx.report["isolation"] = attempt("isolation", lambda: isolation_runs(ctx))
    if "scale" in sections and not args.skip_hookline:
        ctx.report["scale"] = attempt("scale", lambda: scale_runs(ctx))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks run
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    registry: list[Group] = []
    prefixes: list[str] = []
    failures: list[str] = []
    report: dict[str, Any] = {}
    sink: Sink | None = None
    ctx: Context | None = None
    started = time.time()
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=3).ping()
        sink = Sink.start(workdir, child_env())
        ctx = Context(args, sink, workdir, registry, prefixes, report)
        run_sections(ctx, failures)
    finally:
        for group in registry:
            group.stop()
        if sink is not None:
            sink.group.stop(grace=3)
        try:
            removed = delete_keys(args.redis_url, prefixes)
            if removed:
                log(f"redis: deleted {removed} leftover key(s) under the run's prefixes")
        except redis.RedisError as exc:
            log(f"redis: could not delete the run's keys: {exc}")
        if args.keep_logs:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    runs = ctx.runs if ctx is not None else []
    notes = ctx.notes if ctx is not None else []
    failures += [f"{r.name}: {r.message}" for r in runs
                 if not r.completed and r.section not in ("isolation",)]
    report.update({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"sections": [s for s in SECTIONS if s in args.sections],
                     "events": args.events, "workers": args.workers,
                     "concurrency": args.concurrency, "pool": args.pool,
                     "rate": args.rate, "rate_events": args.rate_events,
                     "drain_events": args.drain_events, "memory_events": args.memory_events,
                     "memory_timeout": args.memory_timeout,
                     "isolation_events": args.isolation_events,
                     "isolation_timeout": args.isolation_timeout, "scale": args.scale,
                     "warmup": args.warmup, "naive_concurrency": args.naive_concurrency,
                     "naive_pool": "prefork", "tenants_endpoints": TENANTS},
        "runs": [asdict(r) for r in runs],
        "notes": notes,
        "failures": failures,
    })
    report["figures"] = output.figures(report)
    report["summary"] = output.summary(report)
    report["completed"] = not failures
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    output.print_report(report)
    print(f"\nfigures written to {args.results} ({report['wall_seconds']} s wall)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
