"""The benchmark's receiver: a fast loopback HTTP/1.1 keep-alive server in its own process.

Run as ``python bench/sink.py --port N``. It answers every POST with ``200`` and a tiny
body, and records, per request, the event id (header ``X-CrewPass-Event-Id`` from
Hookline, ``X-Event-Id`` from the naive baseline) and the receive ``time.time()``.

Control endpoints (GET), used by ``bench/run.py`` over the same loopback port:

* ``/count``   -> ``{"requests", "unique", "duplicates", "missing_id", "connections"}``
  (cheap; polled). ``connections`` counts connections that carried a POST, which shows
  whether the sender keeps connections alive.
* ``/records`` -> the counts plus ``first_seen``: event id -> time of its first receipt
* ``/reset``   -> forget everything (between runs)

Binds to 127.0.0.1 only. Uses plain asyncio with a minimal parser (Content-Length bodies,
which is what ``requests`` sends); it does far less work per request than any sender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from contextlib import suppress

OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
      b"\r\n" + b'{"ok":true}')
ID_HEADERS = (b"x-crewpass-event-id", b"x-event-id")


class Records:
    """What the receiver saw since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.requests = 0
        self.duplicates = 0
        self.missing_id = 0
        self.connections = 0

    def record(self, event_id: str | None, at: float) -> None:
        self.requests += 1
        if not event_id:
            self.missing_id += 1
        elif event_id in self.first_seen:
            self.duplicates += 1
        else:
            self.first_seen[event_id] = at

    def counts(self) -> dict[str, int]:
        return {"requests": self.requests, "unique": len(self.first_seen),
                "duplicates": self.duplicates, "missing_id": self.missing_id,
                "connections": self.connections}


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
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


async def serve_connection(records: Records, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
    posted = False  # connections are counted on their first POST: control GETs are not
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
                records.record(raw.decode("latin-1"), at)
                if not posted:
                    posted = True
                    records.connections += 1
                writer.write(OK)
            else:
                writer.write(control(records, target))
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                return
    except ConnectionError:
        return
    finally:
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=1800.0,
                        help="Exit after this many seconds at the latest.")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.lifetime))
