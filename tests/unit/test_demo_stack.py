"""The demo's local stack: loopback ports, readiness over HTTP, operator commands with their output."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.demo import free_port, http_ok, run_hookline


class TestFreePort:
    """The configured port when nothing listens there, else one the system picks."""

    def test_a_free_preferred_port_is_kept(self) -> None:
        preferred = free_port(0)
        assert free_port(preferred) == preferred

    def test_a_busy_preferred_port_is_replaced(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = int(busy.getsockname()[1])
            chosen = free_port(taken)
        assert chosen != taken and chosen > 0


@pytest.fixture
def answering() -> Iterator[int]:
    """A loopback server: /ok answers 200, anything else 503."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


class TestHttpOk:
    """A service is up once a GET answers 2xx; an error status or no listener is not up."""

    def test_2xx_is_up(self, answering: int) -> None:
        assert http_ok(f"http://127.0.0.1:{answering}/ok")

    def test_an_error_status_is_not_up(self, answering: int) -> None:
        assert not http_ok(f"http://127.0.0.1:{answering}/healthz")

    def test_nothing_listening_is_not_up(self) -> None:
        assert not http_ok(f"http://127.0.0.1:{free_port(0)}/", timeout=0.5)


class TestRunHookline:
    """An operator command runs as a child process; its exit code and output are kept."""

    def test_output_and_exit_code_are_kept(self) -> None:
        result = run_hookline(os.environ, ["dlq", "--help"])
        assert result.returncode == 0
        assert "requeue" in result.output
        assert result.command_line == "hookline dlq --help"

    def test_a_refused_command_keeps_its_error(self) -> None:
        result = run_hookline(os.environ, ["endpoints", "no-such-verb"])
        assert result.returncode == 2
        assert "no-such-verb" in result.output
