"""The benchmark's plumbing: child processes, /proc readings, the receiver client, the stores.

Shared by ``bench/run.py`` and ``bench/producer_latency.py``. Nothing here knows
Hookline or the naive baseline: processes in their own groups (killed in a
``finally``), CPU and RSS read from /proc, bounded waits, a fresh PostgreSQL database,
and the Redis keys under a run's prefixes.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from app import db  # noqa: E402
from config.settings import Settings, get_settings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = resource.getpagesize()


class BenchError(Exception):
    """A setup step failed or a wait ran out; the message says which."""


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
    """Poll *predicate* until true; BenchError after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def poll_until(check: Callable[[], tuple[bool, str]], timeout: float, label: str,
               interval: float = 0.1, report_every: float = 5.0) -> tuple[bool, str]:
    """Call *check* until it says done or *timeout* passes; logs its progress line now and then.

    Returns (done, the last progress line).
    """
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + report_every
    done, line = check()
    while not done and time.monotonic() < deadline:
        if time.monotonic() >= next_report:
            log(f"{label}: {line}")
            next_report += report_every
        time.sleep(interval)
        done, line = check()
    return done, line


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


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    comm: str
    pgrp: int
    cpu_ticks: int  # utime + stime + cutime + cstime: reaped children count for their parent
    rss_bytes: int


def proc_stats() -> Iterator[ProcStat]:
    """Every readable process of the machine, from /proc/<pid>/stat."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                raw = handle.read()
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        fields = rest.split()
        if len(fields) < 22:
            continue
        # fields[0] is field 3 (state): pgrp is 5, utime..cstime 14..17, rss (pages) 24.
        yield ProcStat(pid=int(entry), comm=head.partition("(")[2], pgrp=int(fields[2]),
                       cpu_ticks=sum(int(v) for v in fields[11:15]),
                       rss_bytes=int(fields[21]) * PAGE)


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, all cores added, since boot."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def group_rss(pgids: Sequence[int]) -> dict[int, int]:
    """Resident bytes of each process group in *pgids* (all its processes added)."""
    totals = dict.fromkeys(pgids, 0)
    for stat in proc_stats():
        if stat.pgrp in totals:
            totals[stat.pgrp] += stat.rss_bytes
    return totals


#: The parts machine-wide CPU is split into, in print order ("other" is the rest).
CPU_PARTS = ("workers", "publisher", "postgres", "redis", "receiver", "other")


@dataclass
class CpuSample:
    """Cumulative CPU seconds per component at one instant."""

    machine: float
    parts: dict[str, float]

    @classmethod
    def take(cls, workers: Sequence[Group], receiver: Group | None) -> CpuSample:
        worker_pgids = {w.pgid for w in workers}
        receiver_pgid = receiver.pgid if receiver is not None else -1
        ticks = {"workers": 0, "postgres": 0, "redis": 0, "receiver": 0}
        own = os.getpid()
        for stat in proc_stats():
            if stat.pid == own:
                continue
            if stat.pgrp in worker_pgids:
                ticks["workers"] += stat.cpu_ticks
            elif stat.pgrp == receiver_pgid:
                ticks["receiver"] += stat.cpu_ticks
            elif stat.comm.startswith("postgres"):
                ticks["postgres"] += stat.cpu_ticks
            elif stat.comm.startswith("redis-server"):
                ticks["redis"] += stat.cpu_ticks
        parts = {k: v / CLK_TCK for k, v in ticks.items()}
        parts["publisher"] = time.process_time()
        return cls(machine=machine_busy_seconds(), parts=parts)

    def per_delivery_ms(self, later: CpuSample, deliveries: int) -> dict[str, float]:
        """CPU ms per delivery between this sample and *later*, split into CPU_PARTS + total."""
        if deliveries <= 0:
            return {}
        spent = {k: max(0.0, later.parts[k] - self.parts[k]) for k in self.parts}
        total = later.machine - self.machine
        spent["other"] = max(0.0, total - sum(spent.values()))
        spent["total"] = total
        return {k: round(spent[k] / deliveries * 1000, 3) for k in (*CPU_PARTS, "total")}


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
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            data: dict[str, Any] = json.loads(response.read())
            return data
        finally:
            conn.close()

    def set_mode(self, path: str, mode: str) -> None:
        """Make POSTs to *path* answer ``ok`` (200), ``fail`` (503) or ``hole`` (never)."""
        self.get(f"/mode?path={quote(path, safe='/')}&mode={mode}")

    def count(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.get("/count").items()}

    def first_seen(self) -> dict[str, float]:
        seen: dict[str, float] = self.get("/records")["first_seen"]
        return seen


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


def delete_keys(redis_url: str, prefixes: Sequence[str]) -> int:
    client = redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=5)
    deleted = 0
    try:
        for prefix in prefixes:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                deleted += int(client.delete(key))  # type: ignore[arg-type]
    finally:
        client.close()
    return deleted


@dataclass(frozen=True, slots=True)
class RedisMemory:
    """``INFO memory`` used_memory (the whole server, shared) and the run's own keys."""

    used_memory: int
    keys: int
    keys_bytes: int

    @classmethod
    def take(cls, redis_url: str, prefixes: Sequence[str]) -> RedisMemory:
        client = redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=5)
        try:
            used = int(client.info("memory")["used_memory"])  # type: ignore[index]
            keys = size = 0
            for prefix in prefixes:
                for key in client.scan_iter(match=f"{prefix}*", count=1000):
                    keys += 1
                    size += int(client.memory_usage(key) or 0)  # type: ignore[arg-type]
        finally:
            client.close()
        return cls(used_memory=used, keys=keys, keys_bytes=size)


def child_env(settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """This environment minus HOOKLINE_*, plus the settings as HOOKLINE_* (as the tests do)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    if settings is not None:
        env.update(settings.as_environment())
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def wait_workers(app: Any, groups: Sequence[Group], timeout: float) -> None:
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
