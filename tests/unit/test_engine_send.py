"""The engine's sender: a total deadline per attempt, bounded reads, per-endpoint caps.

Every server here is a raw socket on 127.0.0.1 that answers as scripted.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.classification import TransportError
from app.egress import EgressPolicy
from app.engine.send import AsyncSender, Deferred, OutgoingRequest
from app.transport import HttpResult

LOOPBACK = EgressPolicy.from_networks(["127.0.0.0/8"], allow_http=True)
Script = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """Accepts connections, reads one request head, then runs its script (bounded)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.stop_event = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.script(conn, self.stop_event)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop_event.set()
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def sender() -> Iterator[AsyncSender]:
    instance = AsyncSender(user_agent="Hookline/test", policy=LOOPBACK, per_endpoint=2,
                           slot_wait=0.3)
    yield instance
    instance.close()


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    deadline = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < deadline:
        conn.sendall(b"x")
        time.sleep(0.1)


def hang(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(10)


def huge(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n")
    chunk = b"y" * 65536
    deadline = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < deadline:
        conn.sendall(chunk)


def request(url: str, key: str = "ep", timeout: tuple[float, float] = (0.5, 0.5)
            ) -> OutgoingRequest:
    return OutgoingRequest(key=key, url=url, body=b"{}", headers={}, timeout=timeout)


class TestDeadline:
    """The whole attempt, body included, ends at connect + read timeout."""

    def test_a_receiver_that_trickles_bytes_is_cut_off_at_the_total_deadline(
        self, serve: Callable[[Script], RawServer], sender: AsyncSender
    ) -> None:
        server = serve(trickle)
        started = time.monotonic()
        [result] = sender.send_many([request(server.url)])
        elapsed = time.monotonic() - started
        assert isinstance(result, HttpResult)
        assert result.error is TransportError.TIMEOUT
        assert elapsed < 1.5  # 0.5 + 0.5, with slack; each byte came well within 0.5 s

    def test_a_receiver_that_never_answers_times_out(
        self, serve: Callable[[Script], RawServer], sender: AsyncSender
    ) -> None:
        server = serve(hang)
        [result] = sender.send_many([request(server.url)])
        assert isinstance(result, HttpResult) and result.error is TransportError.TIMEOUT


class TestBoundedReads:
    """A huge answer is read up to the limit, its connection dropped, the excerpt kept short."""

    def test_a_50_mb_body_is_not_read_whole(self, serve: Callable[[Script], RawServer]) -> None:
        server = serve(huge)
        sender = AsyncSender(user_agent="t", policy=LOOPBACK, excerpt_bytes=100)
        try:
            started = time.monotonic()
            [result] = sender.send_many([request(server.url, timeout=(1, 5))])
        finally:
            sender.close()
        assert isinstance(result, HttpResult)
        assert result.status == 200
        assert len(result.body_excerpt) == 100
        assert time.monotonic() - started < 3


class TestPerEndpointCap:
    """One endpoint holds at most its cap; its extra requests are deferred, others go on."""

    def test_a_black_hole_gets_its_cap_and_the_rest_are_deferred(
        self, serve: Callable[[Script], RawServer], sender: AsyncSender
    ) -> None:
        hole = serve(hang)
        healthy = serve(lambda conn, _stop: conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        batch = [request(hole.url, key="hole") for _ in range(5)]
        batch += [request(healthy.url, key="healthy") for _ in range(2)]
        results = sender.send_many(batch)
        holes, good = results[:5], results[5:]
        assert sum(isinstance(r, Deferred) for r in holes) == 3
        assert sum(isinstance(r, HttpResult) and r.error is TransportError.TIMEOUT
                   for r in holes) == 2
        assert all(isinstance(r, HttpResult) and r.status == 200 for r in good)
