"""HTTP client libraries compared the way the delivery engine uses them, on loopback.

Run as ``.venv/bin/python bench/clients.py [--requests N] [--only NAME,...]``.

Starts ``bench/sink.py`` (the benchmark's receiver, its own process and process group,
killed in a ``finally``) on a free 127.0.0.1 port, then for each client POSTs N ~1 KB
JSON bodies with Hookline-shaped headers to one path over keep-alive connections and
reads every answer. Bodies and headers are built before the clock starts, so the
figures are the client's own cost: wall requests/s, the CPU of this process (which runs
nothing but the client) per request from ``time.process_time()``, and the receiver's
CPU per request from ``/proc/<pid>/stat``. Each client first sends an uncounted warm-up
over the same connections; the receiver's counters (read over a separate control
connection) check that every request arrived and show how many connections carried
the measured ones.

Clients: ``requests`` (one Session, sequential), ``requests-threads`` (32 threads, one
Session each), ``aiohttp`` (one ClientSession, sequential awaits), ``aiohttp-64``
(asyncio.gather under a semaphore of 64), ``urllib3`` (PoolManager, sequential),
``pycurl-64`` (CurlMulti with 64 easy handles; skipped with its reason if pycurl does
not import). Everything is bounded: per-request (connect, read) timeouts, a wall
deadline per client (``--deadline``), and the receiver's own ``--lifetime``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECT, READ = 5.0, 30.0
PATH = "/hooks/clients"
USER_AGENT = "Hookline/bench"

#: One request: (body, headers).
Request = tuple[bytes, dict[str, str]]


class DeadlineExceeded(Exception):
    """A client ran past its wall deadline."""


# -- the workload ---------------------------------------------------------------------------
def build_requests(count: int, tag: str) -> list[Request]:
    """*count* ~1 KB CrewPass-shaped JSON bodies, each with its own event id and signature."""
    out: list[Request] = []
    now = int(time.time())
    for seq in range(count):
        event_id = f"evt_{tag}_{seq:07d}"
        body = json.dumps({
            "id": event_id, "type": "crew.status.changed", "created_at": now,
            "data": {
                "published_at": time.time(), "seq": seq, "crew_id": f"crw_{seq % 97:05d}",
                "background_check_status": "completed", "previous_status": "pending",
                "checks": [{"kind": k, "result": "clear", "provider": "bench"} for k in
                           ("identity", "criminal", "sanctions", "medical", "stcw")],
                "notes": "x" * 510,
            },
        }, separators=(",", ":")).encode()
        signature = hashlib.sha256(body).hexdigest()
        out.append((body, {
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-CrewPass-Event-Id": event_id, "X-CrewPass-Timestamp": str(now),
            "X-CrewPass-Signature": f"t={now},v1={signature}",
        }))
    return out


# -- the receiver ---------------------------------------------------------------------------
class Sink:
    """bench/sink.py as a child process in its own session."""

    def __init__(self, lifetime: float) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.popen = subprocess.Popen(
            [sys.executable, str(BENCH / "sink.py"), "--port", str(self.port),
             "--lifetime", str(lifetime)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.popen.poll() is not None:
                raise SystemExit(f"the receiver exited: {self.popen.stderr.read().decode()[-2000:]}"
                                 if self.popen.stderr else "the receiver exited")
            try:
                self.count()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the receiver did not listen within 15 s") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def count(self) -> dict[str, int]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/count")
            return {k: int(v) for k, v in json.loads(conn.getresponse().read()).items()}
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.popen.pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def stop(self) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        if self.popen.stderr:
            self.popen.stderr.close()


# -- the clients ----------------------------------------------------------------------------
# Each client is ``run(url, batches, deadline_s) -> errors per batch``: it sets itself up
# once, sends every batch over the same connections, and calls ``mark()`` (the measuring
# hook) right before each batch.  The first batch is the warm-up.
Mark = Callable[[int], None]


def check_deadline(end: float) -> None:
    if time.monotonic() > end:
        raise DeadlineExceeded


def run_requests(url: str, batches: list[list[Request]], mark: Mark, end: float) -> list[int]:
    import requests

    errors = []
    with requests.Session() as session:
        for i, batch in enumerate(batches):
            mark(i)
            bad = 0
            for body, headers in batch:
                check_deadline(end)
                response = session.post(url, data=body, headers=headers, timeout=(CONNECT, READ),
                                        allow_redirects=False)
                _ = response.content
                bad += response.status_code != 200
            errors.append(bad)
    return errors


def run_requests_threads(url: str, batches: list[list[Request]], mark: Mark, end: float,
                         threads: int = 32) -> list[int]:
    import requests

    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def post(request: Request) -> int:
        check_deadline(end)
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            with lock:
                sessions.append(session)
        body, headers = request
        response = session.post(url, data=body, headers=headers, timeout=(CONNECT, READ),
                                allow_redirects=False)
        _ = response.content
        return int(response.status_code != 200)

    errors = []
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for i, batch in enumerate(batches):
                mark(i)
                errors.append(sum(pool.map(post, batch)))
    finally:
        for session in sessions:
            session.close()
    return errors


def run_aiohttp(url: str, batches: list[list[Request]], mark: Mark, end: float,
                inflight: int = 1) -> list[int]:
    import aiohttp

    async def main() -> list[int]:
        connector = aiohttp.TCPConnector(limit=max(inflight, 1), limit_per_host=0,
                                         use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT, sock_read=READ)
        slots = asyncio.Semaphore(inflight)
        errors = []
        async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                         auto_decompress=False,
                                         skip_auto_headers=("Content-Type",)) as session:

            async def post(request: Request) -> int:
                body, headers = request
                async with session.post(url, data=body, headers=headers, timeout=timeout,
                                        allow_redirects=False) as response:
                    await response.read()
                    return int(response.status != 200)

            for i, batch in enumerate(batches):
                mark(i)
                remaining = max(end - time.monotonic(), 0.001)
                try:
                    async with asyncio.timeout(remaining):
                        if inflight == 1:
                            bad = 0
                            for request in batch:
                                bad += await post(request)
                        else:
                            async def bounded(request: Request) -> int:
                                async with slots:
                                    return await post(request)

                            bad = sum(await asyncio.gather(*(bounded(r) for r in batch)))
                except TimeoutError:
                    raise DeadlineExceeded from None
                errors.append(bad)
        return errors

    return asyncio.run(main())


def run_urllib3(url: str, batches: list[list[Request]], mark: Mark, end: float) -> list[int]:
    import urllib3

    timeout = urllib3.Timeout(connect=CONNECT, read=READ)
    errors = []
    with urllib3.PoolManager(maxsize=1) as manager:
        for i, batch in enumerate(batches):
            mark(i)
            bad = 0
            for body, headers in batch:
                check_deadline(end)
                response = manager.request("POST", url, body=body, headers=headers,
                                           timeout=timeout, redirect=False, retries=False)
                bad += response.status != 200
            errors.append(bad)
    return errors


def run_pycurl(url: str, batches: list[list[Request]], mark: Mark, end: float,
               inflight: int = 64) -> list[int]:
    import pycurl  # type: ignore[import-untyped,import-not-found,unused-ignore]

    multi = pycurl.CurlMulti()
    handles = []
    for _ in range(inflight):
        handle = pycurl.Curl()
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, int(CONNECT * 1000))
        handle.setopt(pycurl.TIMEOUT_MS, int((CONNECT + READ) * 1000))
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)  # answer read and dropped
        handles.append(handle)
    errors = []
    try:
        for i, batch in enumerate(batches):
            mark(i)
            pending = iter(batch)
            free = list(handles)
            active = 0
            bad = 0
            exhausted = False
            while True:
                check_deadline(end)
                while free and not exhausted:
                    request = next(pending, None)
                    if request is None:
                        exhausted = True
                        break
                    body, headers = request
                    handle = free.pop()
                    handle.setopt(pycurl.POSTFIELDS, body)
                    # "Expect:" off: the receiver does not answer 100-continue.
                    handle.setopt(pycurl.HTTPHEADER,
                                  [f"{k}: {v}" for k, v in headers.items()] + ["Expect:"])
                    multi.add_handle(handle)
                    active += 1
                if not active and exhausted:
                    break
                status, _running = multi.perform()
                while status == pycurl.E_CALL_MULTI_PERFORM:
                    status, _running = multi.perform()
                _queued, done, failed = multi.info_read()
                for handle in done:
                    bad += handle.getinfo(pycurl.RESPONSE_CODE) != 200
                    multi.remove_handle(handle)
                    free.append(handle)
                    active -= 1
                for handle, _code, _message in failed:
                    bad += 1
                    multi.remove_handle(handle)
                    free.append(handle)
                    active -= 1
                if not done and not failed:
                    multi.select(0.5)
            errors.append(bad)
    finally:
        for handle in handles:
            with suppress(pycurl.error):
                multi.remove_handle(handle)
            handle.close()
        multi.close()
    return errors


@dataclass(frozen=True)
class Client:
    name: str
    inflight: int
    run: Callable[[str, list[list[Request]], Mark, float], list[int]]
    needs: str  # the module that must import


CLIENTS = [
    Client("requests", 1, run_requests, "requests"),
    Client("requests-threads", 32, run_requests_threads, "requests"),
    Client("aiohttp", 1, lambda u, b, m, e: run_aiohttp(u, b, m, e, inflight=1), "aiohttp"),
    Client("aiohttp-64", 64, lambda u, b, m, e: run_aiohttp(u, b, m, e, inflight=64), "aiohttp"),
    Client("urllib3", 1, run_urllib3, "urllib3"),
    Client("pycurl-64", 64, lambda u, b, m, e: run_pycurl(u, b, m, e, inflight=64), "pycurl"),
]


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    inflight: int
    note: str = ""
    sent: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    receiver_cpu: float = 0.0
    received: int = 0
    conns: int = 0
    errors: int = 0


def measure(client: Client, sink: Sink, count: int, warmup: int, deadline: float) -> Row:
    row = Row(client.name, client.inflight)
    try:
        __import__(client.needs)
    except ImportError as exc:
        row.note = f"not installed ({exc})"
        return row
    batches = [build_requests(warmup, f"{client.name}-w"), build_requests(count, client.name)]
    start: dict[str, Any] = {}

    def mark(i: int) -> None:
        if i == 1:  # the measured batch starts now
            start["counts"] = sink.count()
            start["receiver"] = sink.cpu_seconds()
            start["cpu"] = time.process_time()
            start["wall"] = time.perf_counter()

    try:
        errors = client.run(sink.url, batches, mark, time.monotonic() + deadline)
    except DeadlineExceeded:
        row.note = f"cut: over the {deadline:g} s deadline"
        return row
    except Exception as exc:  # one client's failure is its row, not the run's
        row.note = f"failed: {type(exc).__name__}: {exc}"[:120]
        return row
    row.seconds = time.perf_counter() - start["wall"]
    row.cpu = time.process_time() - start["cpu"]
    row.receiver_cpu = sink.cpu_seconds() - start["receiver"]
    counts = sink.count()
    row.sent = count
    row.received = counts["requests"] - start["counts"]["requests"]
    row.conns = counts["connections"] - start["counts"]["connections"]
    row.errors = errors[1]
    if row.received != count or row.errors:
        row.note = f"received {row.received} of {count}, {row.errors} non-200"
    return row


def table(rows: list[Row], header: str) -> str:
    lines = [header,
             f"{'client':<18} {'in flight':>9} {'req/s':>8} {'client CPU µs/req':>18} "
             f"{'receiver CPU µs/req':>20} {'new conns':>9}",
             "-" * 87]
    for r in rows:
        if not r.sent:
            lines.append(f"{r.name:<18} {r.inflight:>9}  {r.note}")
            continue
        lines.append(f"{r.name:<18} {r.inflight:>9} {r.sent / r.seconds:>8,.0f} "
                     f"{r.cpu / r.sent * 1e6:>18,.0f} {r.receiver_cpu / r.sent * 1e6:>20,.0f} "
                     f"{r.conns:>9}" + (f"  {r.note}" if r.note else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, metavar="N",
                        help="measured POSTs per client (default 5000)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="uncounted POSTs per client before the measured ones (default 200)")
    parser.add_argument("--only", default="",
                        help="comma list of clients: " + ",".join(c.name for c in CLIENTS))
    parser.add_argument("--deadline", type=float, default=60.0,
                        help="wall seconds a client may take, warm-up included (default 60)")
    args = parser.parse_args()
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be at least 1 and --warmup not negative")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - {c.name for c in CLIENTS}
    if unknown:
        parser.error(f"unknown client(s): {', '.join(sorted(unknown))}")
    chosen = [c for c in CLIENTS if not names or c.name in names]

    load_before = os.getloadavg()
    sink = Sink(lifetime=len(chosen) * (args.deadline + 30) + 60)
    rows = []
    try:
        for client in chosen:
            print(f"[{time.strftime('%H:%M:%S')}] {client.name} ...", file=sys.stderr, flush=True)
            rows.append(measure(client, sink, args.requests, args.warmup, args.deadline))
    finally:
        sink.stop()
    load_after = os.getloadavg()
    header = (f"HTTP clients -> bench/sink.py on 127.0.0.1  nproc={os.cpu_count()}  "
              f"requests={args.requests} (+{args.warmup} warm-up) of "
              f"{len(build_requests(1, 'x')[0][0])} B  Python {sys.version.split()[0]}\n"
              f"load average before {load_before[0]:.2f} {load_before[1]:.2f} "
              f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
              f"{load_after[2]:.2f}")
    print(table(rows, header))
    return 1 if any(r.note and not r.note.startswith("not installed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
