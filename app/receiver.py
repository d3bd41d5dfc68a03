"""A local webhook receiver for the demo, the tests and the benchmark.

Binds to 127.0.0.1 only. Each route can verify signatures, answer a scripted
sequence of statuses per event (``[503, 200]``: fail once, then accept), add a
``Retry-After``, or stall. It records every request and dedupes on the event id,
as a well-behaved receiver must.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Verifier = Callable[[Mapping[str, str], bytes], bool]
EventIdOf = Callable[[Mapping[str, str], bytes], str]


def crewpass_event_id(headers: Mapping[str, str], _body: bytes) -> str:
    for key, value in headers.items():
        if key.lower() == "x-crewpass-event-id":
            return value
    return ""


@dataclass
class Route:
    statuses: list[int] = field(default_factory=lambda: [200])
    verify: Verifier | None = None
    retry_after: str | None = None
    delay: float = 0.0
    event_id_of: EventIdOf = crewpass_event_id
    #: Overrides *statuses*: the status for (event id, attempts seen before this one).
    status_of: Callable[[str, int], int] | None = None


@dataclass(frozen=True)
class Received:
    path: str
    event_id: str
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool | None
    at: float


class Receiver:
    """Start with :meth:`start`, register routes, read :attr:`received`; stop with :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the receiver binds to loopback only")
        self.routes: dict[str, Route] = {}
        self.received: list[Received] = []
        self.unique: dict[str, set[str]] = {}
        self.duplicates = 0
        self.arrived: dict[str, int] = {}
        self.bad_signatures = 0
        self._seen_attempts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, route: Route | None = None) -> str:
        self.routes[path] = route or Route()
        return self.url(path)

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="hookline-receiver")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def for_path(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def accepted(self, path: str) -> set[str]:
        with self._lock:
            return set(self.unique.get(path, set()))

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        route = self.routes.get(path)
        if route is None:
            return 404, {}
        with self._lock:
            self.arrived[path] = self.arrived.get(path, 0) + 1
        if route.delay:
            time.sleep(route.delay)
        verified = route.verify(headers, body) if route.verify else None
        event_id = route.event_id_of(headers, body)
        with self._lock:
            if verified is False:
                self.bad_signatures += 1
                status = 401
            else:
                n = self._seen_attempts.get((path, event_id), 0)
                self._seen_attempts[(path, event_id)] = n + 1
                status = (route.status_of(event_id, n) if route.status_of is not None
                          else route.statuses[min(n, len(route.statuses) - 1)])
            if 200 <= status < 300:
                seen = self.unique.setdefault(path, set())
                if event_id in seen:
                    self.duplicates += 1
                seen.add(event_id)
            self.received.append(Received(path, event_id, headers, body, status, verified,
                                          time.time()))
        extra = {"Retry-After": route.retry_after} if route.retry_after and status >= 400 else {}
        return status, extra

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, extra = receiver._answer(self.path, dict(self.headers.items()), body)
                payload = b'{"ok":true}' if status < 300 else b'{"error":"scripted"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
