"""The benchmark's receiver: a fast loopback HTTP/1.1 keep-alive server in its own process.

Run as ``python bench/sink.py --port N``. A POST is answered by its path's mode:

* ``ok`` (the default): ``200`` and a tiny body; the receiver records the event id
  (header ``X-CrewPass-Event-Id`` from Hookline, ``X-Event-Id`` from the naive baseline)
  and the receive ``time.time()`` of its first receipt;
* ``fail`` (every path under ``/fail/``): ``503``, counted (requests, unique ids);
* ``hole`` (every path under ``/blackhole/``): the request is read and never answered;
  the connection stays open until the sender gives up or the receiver exits (at the
  latest after ``--lifetime``), so the sender sees a read timeout.
* ``chaos`` (every path under ``/chaos/``): a seeded draw per request: 30 % ``503``,
  10 % ``hole``, 5 % connection reset (RST, no answer), the rest ``ok``;
* ``flaky`` (every path under ``/flaky/``): a seeded draw per request, 20 % ``503``;
* ``poison`` (every path under ``/poison/``): the sender's process group is killed
  (SIGKILL) before any answer, found from the connection's peer port in ``/proc``:
  a delivery that kills its worker every time it is attempted (``bench/chaos.py``).

``/mode?path=P&mode=M`` sets the mode of one exact path, so a benchmark can turn a
healthy endpoint into a failing or black-holed one without touching the sender.

Control endpoints (GET), used by ``bench/run.py`` over the same loopback port:

* ``/count``   -> ``{"requests", "unique", "duplicates", "missing_id", "connections",
  "fail_requests", "fail_unique", "hole_requests", "hole_open"}`` (cheap; polled).
  ``connections`` counts connections that carried a POST, which shows whether the
  sender keeps connections alive; ``hole_open`` is the requests held open right now.
* ``/records`` -> the counts plus ``first_seen``: event id -> time of its first 200
* ``/reset``   -> forget the records (between runs); modes stay
* ``/mode?path=P&mode=ok|fail|hole|chaos|flaky|poison`` -> set one path's mode

Binds to 127.0.0.1 only. Uses plain asyncio with a minimal parser (Content-Length bodies,
which is what ``requests`` sends); it does far less work per request than any sender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import time
from contextlib import suppress
from urllib.parse import parse_qs, unquote

OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
      b"\r\n" + b'{"ok":true}')
UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Content-Length: 12\r\n\r\n" + b'{"ok":false}')
MODES = ("ok", "fail", "hole", "chaos", "flaky", "poison")
PREFIX_MODES = ((b"/fail/", "fail"), (b"/blackhole/", "hole"), (b"/chaos/", "chaos"),
                (b"/flaky/", "flaky"), (b"/poison/", "poison"))
#: ``chaos`` mode: the share of requests answered 503, held open, and reset.
CHAOS_FAIL, CHAOS_HOLE, CHAOS_RESET = 0.30, 0.10, 0.05
#: ``flaky`` mode: the share of requests answered 503.
FLAKY_FAIL = 0.20
ID_HEADERS = (b"x-crewpass-event-id", b"x-event-id")


class Records:
    """What the receiver saw since the last reset."""

    def __init__(self) -> None:
        self.modes: dict[bytes, str] = {}
        self.hole_open = 0
        self.writers: set[asyncio.StreamWriter] = set()  # open connections, closed at exit
        self.rng = random.Random(20261202)  # ``chaos`` draws: the same sequence every run
        self.reset()

    def reset(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.requests = 0
        self.duplicates = 0
        self.missing_id = 0
        self.connections = 0
        self.fail_seen: set[str] = set()
        self.fail_requests = 0
        self.hole_requests = 0
        self.reset_requests = 0
        self.poison_requests = 0
        self.poison_kills = 0

    def mode_of(self, target: bytes) -> str:
        path = target.split(b"?", 1)[0]
        mode = self.modes.get(path)
        if mode is not None:
            return mode
        return next((m for prefix, m in PREFIX_MODES if path.startswith(prefix)), "ok")

    def record(self, event_id: str | None, at: float) -> None:
        self.requests += 1
        if not event_id:
            self.missing_id += 1
        elif event_id in self.first_seen:
            self.duplicates += 1
        else:
            self.first_seen[event_id] = at

    def record_failure(self, event_id: str | None) -> None:
        self.fail_requests += 1
        if event_id:
            self.fail_seen.add(event_id)

    def counts(self) -> dict[str, int]:
        return {"requests": self.requests, "unique": len(self.first_seen),
                "duplicates": self.duplicates, "missing_id": self.missing_id,
                "connections": self.connections, "fail_requests": self.fail_requests,
                "fail_unique": len(self.fail_seen), "hole_requests": self.hole_requests,
                "hole_open": self.hole_open, "reset_requests": self.reset_requests,
                "poison_requests": self.poison_requests, "poison_kills": self.poison_kills}


def json_response(payload: object) -> bytes:
    body = json.dumps(payload).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def control(records: Records, target: bytes) -> bytes:
    path = target.split(b"?", 1)[0]
    if path == b"/count":
        return json_response(records.counts())
    if path == b"/records":
        return json_response({**records.counts(), "first_seen": records.first_seen})
    if path == b"/reset":
        records.reset()
        return json_response({"reset": True})
    if path == b"/mode":
        query = parse_qs(target.split(b"?", 1)[1].decode("latin-1") if b"?" in target else "")
        where = unquote(query.get("path", [""])[0]).encode("latin-1")
        mode = query.get("mode", [""])[0]
        if not where.startswith(b"/") or mode not in MODES:
            return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        records.modes[where] = mode
        return json_response({"path": where.decode("latin-1"), "mode": mode})
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


async def hold(records: Records, reader: asyncio.StreamReader) -> None:
    """Never answer: read and drop whatever comes until the sender closes the connection.

    Bounded by the receiver's lifetime: when it exits, the connection goes with it.
    """
    records.hole_open += 1
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    finally:
        records.hole_open -= 1


def socket_owner(local_port: int, peer_port: int) -> int | None:
    """The pid holding the loopback TCP socket ``peer_port -> local_port`` (from /proc)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    here, there = fields[1], fields[2]
                    if (int(here.rsplit(":", 1)[1], 16) == peer_port
                            and int(there.rsplit(":", 1)[1], 16) == local_port):
                        inode = fields[9]
                        break
        except OSError:
            continue
        if inode:
            break
    if not inode:
        return None
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return int(pid)
        except OSError:
            continue
    return None


def kill_sender(records: Records, writer: asyncio.StreamWriter) -> None:
    """SIGKILL the process group of whoever opened this connection (a poison delivery)."""
    records.poison_requests += 1
    local = writer.get_extra_info("sockname")
    peer = writer.get_extra_info("peername")
    pid = socket_owner(local[1], peer[1]) if local and peer else None
    if pid is None:
        return
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        records.poison_kills += 1


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with an RST instead of an answer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve_connection(records: Records, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
    posted = False  # connections are counted on their first POST: control GETs are not
    records.writers.add(writer)
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.split(b"\r\n")
            try:
                method, target, _version = lines[0].split(b" ", 2)
            except ValueError:
                return
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            try:
                if length:
                    await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if method == b"POST":
                at = time.time()
                raw = next((headers[h] for h in ID_HEADERS if h in headers), b"")
                if not posted:
                    posted = True
                    records.connections += 1
                mode = records.mode_of(target)
                if mode == "chaos":
                    draw = records.rng.random()
                    mode = ("fail" if draw < CHAOS_FAIL else
                            "hole" if draw < CHAOS_FAIL + CHAOS_HOLE else
                            "reset" if draw < CHAOS_FAIL + CHAOS_HOLE + CHAOS_RESET else "ok")
                elif mode == "flaky":
                    mode = "fail" if records.rng.random() < FLAKY_FAIL else "ok"
                if mode == "poison":
                    kill_sender(records, writer)
                    await hold(records, reader)
                    return
                if mode == "reset":
                    records.reset_requests += 1
                    reset(writer)
                    return
                if mode == "hole":
                    records.hole_requests += 1
                    await hold(records, reader)
                    return
                if mode == "fail":
                    records.record_failure(raw.decode("latin-1"))
                    writer.write(UNAVAILABLE)
                else:
                    records.record(raw.decode("latin-1"), at)
                    writer.write(OK)
            else:
                writer.write(control(records, target))
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                return
    except ConnectionError:
        return
    finally:
        records.writers.discard(writer)
        writer.close()


async def main(port: int, lifetime: float) -> None:
    records = Records()
    server = await asyncio.start_server(
        lambda r, w: serve_connection(records, r, w), host="127.0.0.1", port=port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        # Bounded: the sink stops by itself even if the benchmark forgets it.
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=lifetime)
        for writer in list(records.writers):  # held-open ones too: nothing outlives the receiver
            writer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=1800.0,
                        help="Exit after this many seconds at the latest.")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.lifetime))
