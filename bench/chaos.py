"""Fault injection: what each fault costs, measured on real processes.

Run as ``python bench/chaos.py [--short] [--only NAME ...]``. Every scenario gets its own
PostgreSQL cluster and its own redis-server (both on free loopback ports, in a temporary
directory), so a scenario may restart or flush them without touching anything else on
the machine. The stack is the one a user runs: ``hookline db upgrade``, ``hookline api``,
two ``hookline worker`` processes and ``hookline beat``, each in its own process group.
The receiver answers 503 to a fifth of the requests (so retries wait in
countdowns, as in production) unless a scenario says otherwise. Events are published
through the API's batch endpoint, each with an idempotency key, and
a publish that fails (database down) is sent again until it is accepted. The receiver is
``bench/sink.py`` on 127.0.0.1.

The scenarios (``--short`` runs each with fewer events, for CI):

1. ``kills``: SIGKILL of a worker's process group, 10 times, while 5,000 deliveries run.
   A supervisor starts a new worker in its place, as systemd or Kubernetes would.
2. ``redis-flush``: ``FLUSHALL`` mid-run; ``redis-restart``: redis-server stopped and
   started again mid-run (it keeps nothing on disk).
3. ``postgres-restart``: PostgreSQL stopped for a few seconds and started again; the API's
   ``/readyz`` must answer 503 while it is down.
4. ``all``: kills, a flush and a PostgreSQL restart in one run.
5. ``receiver-chaos``: the receiver answers 503 to 30 %, holds 10 % open past the read
   timeout and resets 5 %: every delivery must end succeeded or dead-lettered.
6. ``poison``: one delivery's receiver kills the worker that sends it, every time; it
   must be dead-lettered ``exhausted`` while the others flow.

Per scenario it prints: published, delivered (unique event ids at the receiver), dead
letters, lost (neither), duplicates (requests beyond the first per event id), the
seconds from the end of the last fault to the moment every event was accounted for, and
the delivery states left in SQL. Every loop is bounded; a scenario that does not recover
within its limit is reported as such, with its states.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from bench.harness import Group, Sink, child_env, free_port, log, wait_for  # noqa: E402
from config.settings import Settings, get_settings  # noqa: E402

EVENT_TYPE = "crew.status.changed"
#: The one event of the poison scenario (only the poison endpoint subscribes to it).
POISON_TYPE = "crew.document.processed"
PG_BIN = Path("/usr/lib/postgresql")


class ChaosError(Exception):
    """A part of the stack could not be started; the message says which."""


# -- private services -------------------------------------------------------------------
def pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(PG_BIN.glob("*/bin"), reverse=True)
    if not versions:
        raise ChaosError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return str(versions[0] / name)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, stopped and started at will."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "pg"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = list(argv)
        if self._as_postgres:  # initdb and pg_ctl refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise ChaosError(f"{' '.join(argv[:2])} failed: {done.stderr[-800:]}")

    def init(self) -> PrivatePostgres:
        self.dir.mkdir(parents=True)
        if self._as_postgres:
            shutil.chown(self.dir.parent, "postgres")
            shutil.chown(self.dir, "postgres")
        self._run(pg_binary("initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c max_connections=200")
        self._run(pg_binary("pg_ctl"), "-D", str(self.dir), "-l", str(self.dir / "log"),
                  "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        with suppress(ChaosError, subprocess.TimeoutExpired):
            self._run(pg_binary("pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def up(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


class PrivateRedis:
    """A redis-server on a free loopback port that keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            from app.embedded import redis_server_binary
            binary = redis_server_binary()
        self.popen = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.up, 10, "redis-server")
        return self

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


# -- the stack --------------------------------------------------------------------------
@dataclass(slots=True)
class Scenario:
    name: str
    events: int
    #: Seconds over which the events are published.
    publish_over: float
    #: Receiver path prefix (``bench/sink.py``'s modes): ``flaky`` answers 503 to 20 %.
    path: str = "flaky"
    #: The faults, each called at its second after publishing started.
    faults: list[tuple[float, str]] = field(default_factory=list)
    #: Seconds allowed after the last fault for everything to be accounted for.
    limit: float = 60.0
    poison: bool = False


@dataclass(slots=True)
class Result:
    name: str
    published: int = 0
    delivered: int = 0
    dead: int = 0
    lost: int = 0
    duplicates: int = 0
    recovery_seconds: float | None = None
    limit: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    dead_reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Attempts cut short by a killed worker (recorded ``WorkerLost``).
    in_flight_at_kills: int = 0
    failed: bool = False

    @property
    def passed(self) -> bool:
        return (not self.failed and self.lost == 0 and self.recovery_seconds is not None
                and self.recovery_seconds <= self.limit)


class Stack:
    """Hookline on a private PostgreSQL and Redis, with a supervisor for its workers."""

    def __init__(self, workdir: Path, sink: Sink, *, workers: int = 2,
                 overrides: dict[str, Any] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.workdir = workdir
        self.sink = sink
        self.worker_count = workers
        self.pg = PrivatePostgres(workdir)
        self.redis = PrivateRedis(workdir)
        self.env: dict[str, str] = {}
        self.settings: Settings
        self.api_port = free_port()
        self.groups: dict[str, Group] = {}
        self.generation = 0
        self.kills = 0
        self.restarts = 0
        self._supervise = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.tenant = ""
        self.api_key = ""
        self.endpoints: dict[str, str] = {}
        self.readyz_seen: list[int] = []

    # lifetime
    def start(self) -> None:
        self.pg.init()
        self.redis.start()
        values: dict[str, Any] = dict(
            database_url=self.pg.url, broker_url=self.redis.url, data_dir=self.workdir,
            log_level="WARNING", partitions=4, worker_concurrency=16,
            # The receiver is plain http on 127.0.0.1, which the egress policy refuses by default.
            allow_http=True, egress_allow=["127.0.0.1/32"],
            retry_base_seconds=1, retry_multiplier=2, retry_max_delay_seconds=8,
            max_attempts=10, connect_timeout=1, read_timeout=2, sweep_interval=1,
            circuit_failure_threshold=50)
        self.settings = get_settings(**(values | self.overrides))
        self.env = child_env(self.settings)
        self.hookline("db", "upgrade")
        self.groups["api"] = Group("api", [sys.executable, "-m", "app.cli", "api", "--host",
                                           "127.0.0.1", "--port", str(self.api_port)],
                                   self.env, self.workdir / "api.log")
        self.groups["beat"] = Group("beat", [sys.executable, "-m", "app.cli", "beat"],
                                    self.env, self.workdir / "beat.log")
        # The change feed's relay: it must reconnect by itself after a database restart.
        self.groups["producer"] = Group("producer", [sys.executable, "-m", "app.cli", "producer"],
                                        self.env, self.workdir / "producer.log")
        for i in range(self.worker_count):
            self._start_worker(i)
        wait_for(lambda: self.readyz() == 200, 60, "the API's /readyz")
        self._supervisor = threading.Thread(target=self._watch, daemon=True)
        self._supervisor.start()
        self._supervise.set()

    def close(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for group in self.groups.values():
            group.stop(5)
        self.redis.stop()
        self.pg.stop()

    def hookline(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ChaosError(f"hookline {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def add_tenant(self, name: str, paths: set[str], *, poison_attempts: int = 3) -> None:
        """A tenant of its own for one scenario, with one endpoint per receiver path."""
        from app import admin
        from app.apikeys import create_api_key
        from app.client import Hookline

        hl = Hookline(self.settings)
        try:
            tenant = admin.create_tenant(hl.sessions, name)
            self.tenant = tenant.id
            self.api_key = create_api_key(hl.sessions, tenant.id).key
            self.endpoints = {}
            for path in sorted(paths):
                created = admin.add_endpoint(
                    hl.sessions, hl.catalogue, tenant=tenant.id, url=self.sink.url(f"/{path}/"),
                    events=[POISON_TYPE if path == "poison" else EVENT_TYPE],
                    policy=hl.egress_policy,
                    max_attempts=poison_attempts if path == "poison" else None)
                self.endpoints[path] = created.endpoint.id
        finally:
            hl.close()

    # workers
    def _start_worker(self, index: int) -> None:
        name = f"worker{index}"
        self.generation += 1
        self.groups[name] = Group(
            name, [sys.executable, "-m", "app.cli", "worker",
                   f"--hostname=chaos{index}g{self.generation}@%h"],
            self.env, self.workdir / f"{name}-{self.generation}.log")

    def workers(self) -> list[Group]:
        return [g for n, g in self.groups.items() if n.startswith("worker")]

    def kill_worker(self, index: int) -> None:
        with self._lock:
            group = self.groups.get(f"worker{index % self.worker_count}")
            if group is not None and group.alive():
                with suppress(ProcessLookupError):
                    os.killpg(group.pgid, signal.SIGKILL)
                group.popen.wait(5)
                self.kills += 1

    def _watch(self) -> None:
        """Start a new worker in place of one that died (after half a second)."""
        while not self._stop.wait(0.5):
            with self._lock:
                for i in range(self.worker_count):
                    group = self.groups.get(f"worker{i}")
                    if group is not None and not group.alive():
                        self._start_worker(i)
                        self.restarts += 1

    # services
    def restart_postgres(self, down_for: float) -> None:
        self.pg.stop()
        deadline = time.monotonic() + down_for
        while time.monotonic() < deadline:
            self.readyz_seen.append(self.readyz())
            time.sleep(0.5)
        self.pg.start()

    def restart_redis(self, down_for: float) -> None:
        self.redis.stop()
        time.sleep(down_for)
        self.redis.start()

    def flush_redis(self) -> None:
        self.redis.client().flushall()

    def readyz(self) -> int:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=5)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return 0

    # publishing and reading
    def publish(self, events: list[dict[str, Any]], deadline: float) -> None:
        """POST the batch until it is accepted (every item created or existing)."""
        body = json.dumps({"events": events})
        headers = {"Content-Type": "application/json", "X-API-KEY": self.api_key}
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)
                conn.request("POST", f"/api/{self.tenant}/events/batch", body, headers)
                response = conn.getresponse()
                answer = response.read()
                conn.close()
                if (response.status in (200, 201, 202, 207)
                        and json.loads(answer).get("errors", 0) == 0):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise ChaosError("the API did not accept a batch of events before the deadline")

    def write_outbox(self, count: int) -> list[str]:
        """*count* change-feed outbox rows, as a watched change would write them; their ids."""
        from app.ids import new_id

        ids = [new_id("evt") for _ in range(count)]
        with psycopg.connect(self.pg.url, autocommit=True, connect_timeout=5) as conn:
            for i, event_id in enumerate(ids):
                conn.execute(
                    "INSERT INTO outbox (event_id, tenant_ref, event_type, payload, occurred_at, "
                    "source, state, created_at) VALUES (%s, %s, %s, %s, now(), 'chaos', "
                    "'pending', now())",
                    (event_id, self.tenant, EVENT_TYPE,
                     json.dumps({"crew_unique_id": f"o{i}", "status": "active"})))
        return ids

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg.url, connect_timeout=2) as conn:
            return conn.execute(statement, params).fetchall()


# -- one scenario -----------------------------------------------------------------------
def run_scenario(scenario: Scenario, stack: Stack, sink: Sink) -> Result:
    result = Result(scenario.name, limit=scenario.limit)
    paths = {scenario.path} | ({"poison"} if scenario.poison else set())
    stack.add_tenant(f"chaos-{scenario.name}", paths)
    stack.readyz_seen.clear()
    kills_before = stack.kills
    sink.get("/reset")
    run = uuid.uuid4().hex[:8]
    events = [{"type": EVENT_TYPE, "idempotencyKey": f"{run}-{i}",
               "data": {"crew_unique_id": f"c{i}", "status": "active", "seq": i}}
              for i in range(scenario.events)]
    started = time.monotonic()
    fault_done = threading.Event()
    faults_end: list[float] = []

    def inject() -> None:
        try:
            for at, fault in scenario.faults:
                delay = started + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                log(f"{scenario.name}: {fault}")
                apply_fault(stack, fault)
        except Exception as exc:  # reported, never hidden
            result.notes.append(f"fault injection failed: {exc!r}")
        finally:
            faults_end.append(time.monotonic())
            fault_done.set()

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    if scenario.poison:
        stack.publish([{"type": POISON_TYPE, "idempotencyKey": f"{run}-poison",
                        "data": {"crew_id": "crw_poison", "status": "verified"}}],
                      started + 60)
    chunk = 50
    publish_deadline = started + scenario.publish_over + 120
    for offset in range(0, len(events), chunk):
        due = started + scenario.publish_over * offset / max(len(events), 1)
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        stack.publish(events[offset:offset + chunk], publish_deadline)
    result.published = len(events)
    fault_done.wait(300)
    last_fault = faults_end[0] if faults_end else time.monotonic()
    expected = scenario.events + (1 if scenario.poison else 0)
    relayed: list[str] = []
    if any(f.startswith("postgres") for _, f in scenario.faults):
        # Written after the restart: the producer has to have reconnected to relay them.
        relayed = stack.write_outbox(20)
        expected += len(relayed)
    settled_at = settle(stack, expected, last_fault + scenario.limit + 30)
    if settled_at is not None:
        result.recovery_seconds = round(max(settled_at - last_fault, 0.0), 1)
    read_outcome(stack, sink, scenario, result)
    if relayed:
        arrived = len(set(relayed) & set(sink.first_seen()))
        result.notes.append(f"change feed: {arrived} of {len(relayed)} outbox rows written "
                            "after the restart were relayed and delivered")
        result.published += len(relayed)
        if arrived < len(relayed):
            result.failed = True
    if any(f.startswith("postgres") for _, f in scenario.faults):
        seen = sorted(set(stack.readyz_seen))
        result.notes.append(f"/readyz while PostgreSQL was down: {seen}")
        if 503 not in seen:
            result.notes.append("MISSED: /readyz never answered 503 while PostgreSQL was down")
            result.failed = True
    if stack.kills > kills_before:
        result.notes.append(f"worker kills {stack.kills - kills_before}; the supervisor "
                            f"started {stack.restarts} worker(s) so far")
    return result


def apply_fault(stack: Stack, fault: str) -> None:
    kind, _, arg = fault.partition(":")
    if kind == "kill":
        stack.kill_worker(int(arg or 0))
    elif kind == "flush":
        stack.flush_redis()
    elif kind == "redis-restart":
        stack.restart_redis(float(arg or 2))
    elif kind == "postgres-restart":
        stack.restart_postgres(float(arg or 5))
    else:
        raise ChaosError(f"unknown fault {fault!r}")


def final_count(stack: Stack) -> int:
    rows = stack.sql("SELECT count(*) FROM deliveries WHERE tenant_id = %s "
                     "AND state IN ('succeeded', 'dead')", stack.tenant)
    return int(rows[0][0])


def settle(stack: Stack, expected: int, deadline: float) -> float | None:
    """The moment every delivery is final in SQL, or None if the deadline came first."""
    while time.monotonic() < deadline:
        with suppress(psycopg.Error):
            if final_count(stack) >= expected:
                return time.monotonic()
        time.sleep(0.25)
    return None


def read_outcome(stack: Stack, sink: Sink, scenario: Scenario, result: Result) -> None:
    counts = sink.count()
    seen = set(sink.first_seen())
    rows = stack.sql(
        "SELECT e.id, d.state, d.dead_reason, p.url FROM deliveries d "
        "JOIN events e ON e.id = d.event_id JOIN endpoints p ON p.id = d.endpoint_id "
        "WHERE d.tenant_id = %s", stack.tenant)
    lost_workers = stack.sql(
        "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
        "WHERE d.tenant_id = %s AND a.error_class = 'WorkerLost'", stack.tenant)
    states: dict[str, int] = {}
    reasons: dict[str, int] = {}
    dead = 0
    lost = 0
    for event_id, state, reason, url in rows:
        states[state] = states.get(state, 0) + 1
        if state == "dead":
            dead += 1
            reasons[reason or "?"] = reasons.get(reason or "?", 0) + 1
        elif event_id not in seen and "/poison/" not in url:
            lost += 1
    result.delivered = len(seen)
    result.dead = dead
    result.lost = lost
    result.duplicates = counts.get("duplicates", 0)
    result.in_flight_at_kills = int(lost_workers[0][0])
    result.states = states
    result.dead_reasons = reasons
    if scenario.poison:
        poison = [r for r in rows if "/poison/" in r[3]]
        ended = [(state, reason) for _, state, reason, _ in poison]
        result.notes.append(f"poison: {counts.get('poison_kills', 0)} worker kills, "
                            f"ended {ended}")
        if any(e != ("dead", "exhausted") for e in ended):
            result.notes.append("MISSED: the poison delivery was not dead-lettered exhausted")
            result.failed = True
    if scenario.faults and result.duplicates > result.in_flight_at_kills and not any(
            f.startswith(("flush", "redis", "postgres")) for _, f in scenario.faults):
        result.notes.append("MISSED: more duplicates than deliveries in flight at the kills")
        result.failed = True


# -- the scenarios ----------------------------------------------------------------------
def scenarios(short: bool) -> list[Scenario]:
    n = 200 if short else 5_000
    m = 100 if short else 2_000
    over = 5.0 if short else 20.0
    kills = [(1.0 + i * (over - 2) / 9, f"kill:{i}") for i in range(10)]
    if short:
        kills = [(2.0, "kill:0"), (4.0, "kill:1")]
    return [
        Scenario("kills", n, over, faults=kills, limit=60),
        Scenario("redis-flush", m, over, faults=[(over / 2, "flush")], limit=30),
        Scenario("redis-restart", m, over, faults=[(over / 2, "redis-restart:2")], limit=30),
        Scenario("postgres-restart", m, over, faults=[(over / 2, "postgres-restart:5")],
                 limit=30),
        Scenario("all", n, over, faults=sorted(
            [*kills[: 4 if not short else 1], (over * 0.4, "flush"),
             (over * 0.6, "postgres-restart:5")]), limit=60),
        Scenario("receiver-chaos", m, over, path="chaos", limit=120),
        Scenario("poison", m, over, poison=True, limit=60),
    ]


def report(results: list[Result]) -> str:
    head = (f"{'scenario':<18}{'published':>10}{'delivered':>10}{'dead':>6}{'lost':>6}"
            f"{'dupes':>7}{'cut short':>10}{'recovery s':>12}{'limit s':>9}  result")
    lines = [head, "-" * len(head)]
    for r in results:
        recovery = "never" if r.recovery_seconds is None else f"{r.recovery_seconds:.1f}"
        lines.append(f"{r.name:<18}{r.published:>10}{r.delivered:>10}{r.dead:>6}{r.lost:>6}"
                     f"{r.duplicates:>7}{r.in_flight_at_kills:>10}{recovery:>12}{r.limit:>9.0f}  "
                     f"{'ok' if r.passed else 'MISSED'}")
        lines.append(f"{'':<18}states left: {json.dumps(r.states, sort_keys=True)}"
                     + (f"; dead reasons: {json.dumps(r.dead_reasons, sort_keys=True)}"
                        if r.dead_reasons else ""))
        lines.extend(f"{'':<18}{note}" for note in r.notes)
    return "\n".join(lines)


@contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hookline-chaos-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def run(names: list[str] | None, short: bool, keep: bool = False) -> list[Result]:
    """The scenarios one after another on one stack; each has a tenant of its own."""
    results: list[Result] = []
    with workspace(keep) as root, ExitStack() as cleanup:
        sink = Sink.start(root, {**os.environ, "PYTHONPATH": str(ROOT)})
        cleanup.callback(sink.group.stop, 5)
        # The short version: shorter leases and backoffs, so each fault costs less time.
        quick = {"lease_seconds": 4, "lost_after": 4, "retry_max_delay_seconds": 2} if short else {}
        stack = Stack(root, sink, overrides=quick)
        cleanup.callback(stack.close)
        stack.start()
        for scenario in scenarios(short):
            if names and scenario.name not in names:
                continue
            log(f"{scenario.name}: {scenario.events} events over {scenario.publish_over:.0f} s, "
                f"faults {[f for _, f in scenario.faults]}")
            results.append(run_scenario(scenario, stack, sink))
            log("\n" + report(results[-1:]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="fewer events (the CI version)")
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    args = parser.parse_args()
    results = run(args.only, args.short, args.keep)
    print(report(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
