"""One tenant's bad data never harms another tenant's delivery in the same batch.

Tenant A's endpoints carry settings the API would refuse (stored behind its back, as
old rows or a direct SQL write could) and point at a receiver that answers junk:
broken status lines, odd statuses, unparseable ``Retry-After`` values, undecodable
header bytes, huge and trickled bodies, closed connections. Tenant B has one plain
endpoint. Every delivery is put in *one* message, so one real worker runs them as
one batch. B's delivery must be POSTed exactly once and recorded; each of A's gets
its own attempt with an error class and goes on by the usual rules.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import admin
from app.client import Hookline
from app.receiver import Receiver
from tests.integration.conftest import Stack
from tests.support import wait_until

pytestmark = pytest.mark.integration


class JunkServer:
    """A loopback TCP server that answers each path with scripted raw bytes.

    A script is bytes to send after reading the request, or a callable given the
    socket (to trickle or to close early). Every loop is bounded by ``stop``.
    """

    def __init__(self) -> None:
        self.scripts: dict[str, bytes | Callable[[socket.socket, threading.Event], None]] = {}
        self.hits: dict[str, int] = {}
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            path = head.split(b" ")[1].decode()
            self.hits[path] = self.hits.get(path, 0) + 1
            script = self.scripts.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            if callable(script):
                script(conn, self._stop)
            else:
                conn.sendall(script)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    """A 200 whose body comes one byte at a time, for longer than any deadline (bounded)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    deadline = time.monotonic() + 15
    while not stop.is_set() and time.monotonic() < deadline:
        conn.sendall(b"x")
        time.sleep(0.2)


def close_at_once(conn: socket.socket, _stop: threading.Event) -> None:
    conn.shutdown(socket.SHUT_RDWR)


RESPONSES: dict[str, bytes | Callable[[socket.socket, threading.Event], None]] = {
    "/retry-after-superscript": b"HTTP/1.1 503 Busy\r\nRetry-After: \xc2\xb2\r\nContent-Length: 0\r\n\r\n",
    "/retry-after-huge": b"HTTP/1.1 503 Busy\r\nRetry-After: " + b"9" * 40 + b"\r\nContent-Length: 0\r\n\r\n",
    "/retry-after-negative": b"HTTP/1.1 429 Slow\r\nRetry-After: -5\r\nContent-Length: 0\r\n\r\n",
    "/header-bytes": b"HTTP/1.1 503 X\r\nX-Bad: \xff\xfe\x00\r\nContent-Length: 0\r\n\r\n",
    "/not-http": b"NOT-HTTP AT ALL\r\n\r\n",
    "/status-999": b"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n",
    "/huge-body": b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 2_000_000,
    "/binary-body": b"HTTP/1.1 500 Oops\r\nContent-Length: 6\r\n\r\n\x00\xff\xfe<s>",
    "/gone": b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n",
    "/closed": close_at_once,
    "/trickle": trickle,
}

#: Endpoint settings the API refuses, written straight to the row.
BAD_SETTINGS: dict[str, dict[str, Any]] = {
    "header-euro": {"headers": {"X-Note": "\u20ac"}},
    "header-crlf": {"headers": {"X-Split": "a\r\nInjected: 1"}},
    "url-empty-label": {"url": "http://a..test/x"},
    "url-long-label": {"url": "http://" + "a" * 64 + ".test/x"},
    "url-bad-port": {"url": "http://127.0.0.1:99999/x"},
}


def random_response(rng: random.Random) -> bytes:
    """A status line and headers drawn at random, some of them malformed."""
    status = rng.choice([100, 101, 204, 301, 302, 400, 401, 408, 418, 429, 451, 500, 502, 503,
                         504, 599, 600, 0])
    headers = rng.sample([b"Retry-After: 1e9", b"Retry-After: \xd9\xa3", b"Retry-After: ",
                          b"Retry-After: Wed, 99 Foo 2026 99:99:99 GMT", b"Content-Type: \xff",
                          b"X-Long: " + b"y" * 9000, b"Location: //evil.test/"], k=2)
    return (b"HTTP/1.1 %d Fuzz\r\n" % status + b"\r\n".join(headers)
            + b"\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def junk() -> Iterator[JunkServer]:
    server = JunkServer()
    yield server
    server.stop()


def endpoint(hl: Hookline, tenant: str, url: str) -> str:
    created = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant, url=url,
                                 events=["crew.status.changed"], policy=hl.egress_policy,
                                 max_attempts=3)
    return created.endpoint.id


class _RefusingBroker:
    """A broker that takes nothing, so every published delivery waits parked in SQL."""

    def send_task(self, name: str, args: Any = None, **options: Any) -> Any:
        raise ConnectionError("broker unavailable")


class TestOneBatchAcrossTenants:
    """Whatever tenant A's endpoints and receivers do, tenant B's delivery goes out once."""

    def test_the_control_delivery_is_posted_once_and_recorded(
        self, make_stack: Callable[..., Stack], junk: JunkServer, receiver: Receiver
    ) -> None:
        # One partition, so the sweeper sends every parked delivery in one message.
        stack = make_stack(partitions=1, task_batch=500)
        hl = stack.hookline
        admin.create_tenant(hl.sessions, "tenant-a")
        admin.create_tenant(hl.sessions, "tenant-b")
        rng = random.Random(13)
        for n in range(12):
            RESPONSES[f"/random-{n}"] = random_response(rng)
        a_endpoints = [endpoint(hl, "tenant-a", junk.url(path)) for path in RESPONSES]
        junk.scripts.update(RESPONSES)
        for name, change in BAD_SETTINGS.items():
            ep = endpoint(hl, "tenant-a", junk.url(f"/{name}"))
            a_endpoints.append(ep)
            stack.execute("UPDATE endpoints SET headers = CAST(:headers AS JSONB), url = :url "
                          "WHERE id = :id", id=ep, headers=json.dumps(change.get("headers", {})),
                          url=change.get("url", junk.url(f"/{name}")))
        control = endpoint(hl, "tenant-b", receiver.route("/control"))
        parked = Hookline(stack.settings, sender=_RefusingBroker())
        try:
            a_ids = parked.publish("tenant-a", "crew.status.changed", {"n": 1}).delivery_ids
            [b_id] = parked.publish("tenant-b", "crew.status.changed", {"control": True}).delivery_ids
        finally:
            parked.close()
        assert len(a_ids) == len(a_endpoints)
        assert stack.sql("SELECT count(*) FROM deliveries WHERE queued_at IS NULL")[0][0] == \
            len(a_ids) + 1

        stack.worker()

        def first_attempts_recorded() -> bool:
            rows = stack.sql("SELECT count(DISTINCT delivery_id) FROM attempts")
            return int(rows[0][0]) == len(a_ids) + 1

        wait_until(first_attempts_recorded, timeout=30, what="every delivery's first attempt")
        time.sleep(1.0)  # anything sent twice would have arrived by now
        assert len(receiver.for_path("/control")) == 1
        state, attempts = stack.sql("SELECT state, attempt_count FROM deliveries WHERE id = :id",
                                    id=b_id)[0]
        assert (state, attempts) == ("succeeded", 1)
        [(status,)] = stack.sql("SELECT status_code FROM attempts WHERE delivery_id = :id", id=b_id)
        assert status == 200
        first = stack.sql(
            "SELECT a.delivery_id, a.status_code, a.error_class FROM attempts a "
            "WHERE a.attempt_number = 1 AND a.delivery_id <> :id", id=b_id)
        assert len(first) == len(a_ids)
        for delivery_id, status_code, error_class in first:
            assert status_code is not None or error_class, delivery_id
        stuck = stack.sql("SELECT count(*) FROM deliveries WHERE state = 'in_flight' "
                          "AND lease_expires_at < now()")
        assert stuck[0][0] == 0
        assert control not in a_endpoints
