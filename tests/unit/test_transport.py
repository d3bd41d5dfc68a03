"""The transport enforces destination safety where the socket opens, on loopback only.

Every server here listens on 127.0.0.1 or ::1. Hostnames other than ``localhost`` go
through a stubbed resolver, so no real DNS query is made; the suite's socket guard
(tests/conftest.py) fails any test that tries to connect outside loopback, and the
tests that stub a private answer also record every connect to show none happened.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.classification import TransportError
from app.client import Hookline
from app.egress import EgressPolicy
from app.engine.send import AsyncSender
from app.transport import RequestsTransport, ResolvedAddress
from config.settings import get_settings
from tests.unit.conftest import clear_hookline_env

TIMEOUT = (2.0, 2.0)
LOOPBACK = EgressPolicy.from_networks(["127.0.0.0/8", "::1"], allow_http=True)
HTTP_ONLY = EgressPolicy(allow_http=True)


# -- loopback servers ----------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    client: tuple[Any, ...]
    request_line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """An HTTP/1.1 server on a loopback address that records what reaches it."""

    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    close_each: bool = False
    seen: list[Seen] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.seen.append(Seen(self.client_address, self.requestline,
                                        dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                if server.close_each:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        class HTTPServer(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self._httpd = HTTPServer((self.host, 0), Handler)
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Listener:
    """A bare listening socket: a finished TCP handshake would wait in its accept queue."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(**options: Any) -> Server:
        servers.append(Server(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def listen() -> Iterator[Callable[[str], Listener]]:
    listeners: list[Listener] = []

    def start(host: str) -> Listener:
        listeners.append(Listener(host))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.close()


class Connects:
    """Records every TCP connect the process attempts (on top of the suite's guard)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.addresses: list[Any] = []
        real = socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> Any:
            self.addresses.append(address)
            return real(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Connects:
    return Connects(monkeypatch)


@pytest.fixture
def no_system_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system resolver is never asked about a name (an IP literal needs no lookup)."""
    real = socket.getaddrinfo

    def literal_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise AssertionError(f"the system resolver was asked about {host!r}") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", literal_only)


class StubResolver:
    """Answers from a script, one answer per call (the last one repeats), counting calls."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[ResolvedAddress]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [(socket.AF_INET6, (a, port, 0, 0)) if ":" in a else (socket.AF_INET, (a, port))
                for a in answer]


#: Both ways attempts leave: the pooled requests session, and the engine's aiohttp sender.
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {"requests": RequestsTransport,
                                                   "aiohttp": AsyncSender}
_chosen: list[str] = ["requests"]
_made: list[Any] = []


@pytest.fixture(autouse=True, params=sorted(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs against each implementation: the same rules hold for both."""
    _chosen[0] = request.param
    yield request.param
    while _made:
        made = _made.pop()
        if hasattr(made, "close"):
            made.close()


def transport(policy: EgressPolicy = LOOPBACK, **options: Any) -> Any:
    made = IMPLEMENTATIONS[_chosen[0]](user_agent="Hookline/test", policy=policy, **options)
    _made.append(made)
    return made


# -- the tests ------------------------------------------------------------------------------
class TestBlockedByDefault:
    """Without an allow-list, loopback is refused before any connection is made."""

    @pytest.mark.parametrize(
        ("listen_on", "url"),
        [("127.0.0.1", "http://127.0.0.1:{port}/hooks"), ("::1", "http://[::1]:{port}/hooks"),
         ("127.0.0.1", "http://localhost:{port}/hooks")],
        ids=["ipv4-loopback", "ipv6-loopback", "localhost"],
    )
    def test_a_loopback_destination_is_blocked_and_the_listener_sees_nothing(
        self, listen: Callable[[str], Listener], listen_on: str, url: str
    ) -> None:
        listener = listen(listen_on)
        result = transport(HTTP_ONLY).send(url.format(port=listener.port), b"{}", {}, TIMEOUT)
        assert result.error is TransportError.BLOCKED
        assert result.status is None
        assert result.error_class == "BlockedDestination"
        assert result.error_message is not None and "loopback" in result.error_message
        assert listener.connections() == 0

    def test_plain_http_is_blocked_by_the_default_policy(
        self, listen: Callable[[str], Listener]
    ) -> None:
        listener = listen("127.0.0.1")
        result = RequestsTransport(user_agent="Hookline/test").send(
            f"http://127.0.0.1:{listener.port}/hooks", b"{}", {}, TIMEOUT)
        assert result.error is TransportError.BLOCKED
        assert result.error_message is not None and "plain http" in result.error_message
        assert listener.connections() == 0


class TestAllowList:
    """With loopback on the allow-list the same deliveries arrive, over pooled connections."""

    @pytest.mark.parametrize(
        ("serve_on", "url"),
        [("127.0.0.1", "http://127.0.0.1:{port}/hooks"), ("::1", "http://[::1]:{port}/hooks"),
         ("127.0.0.1", "http://localhost:{port}/hooks")],
        ids=["ipv4-loopback", "ipv6-loopback", "localhost"],
    )
    def test_an_allowed_loopback_destination_receives_the_delivery(
        self, serve: Callable[..., Server], serve_on: str, url: str
    ) -> None:
        server = serve(host=serve_on)
        result = transport().send(url.format(port=server.port), b'{"n":1}', {"X-Test": "1"}, TIMEOUT)
        assert (result.status, result.body_excerpt, result.error) == (200, "ok", None)
        [seen] = server.seen
        assert seen.request_line == "POST /hooks HTTP/1.1"
        assert (seen.body, seen.headers["X-Test"]) == (b'{"n":1}', "1")

    def test_consecutive_deliveries_reuse_one_kept_alive_connection(
        self, serve: Callable[..., Server]
    ) -> None:
        server = serve()
        sender = transport()
        for _ in range(3):
            assert sender.send(f"http://127.0.0.1:{server.port}/hooks", b"{}", {}, TIMEOUT).status == 200
        assert len({seen.client for seen in server.seen}) == 1


@pytest.mark.usefixtures("no_system_dns")
class TestResolution:
    """Hookline resolves the name, checks every answer, and connects to the address it checked."""

    @pytest.mark.parametrize("answer", [["10.0.0.5"], ["169.254.169.254"], ["fd00:ec2::254"],
                                        ["93.184.215.14", "192.168.1.10"]],
                             ids=["private", "metadata", "ipv6-metadata", "one-bad-answer"])
    def test_a_name_resolving_to_a_blocked_address_is_refused_before_any_connect(
        self, connects: Connects, answer: list[str]
    ) -> None:
        resolver = StubResolver(answer)
        result = transport(resolver=resolver).send("https://receiver.example/hooks", b"{}", {},
                                                   TIMEOUT)
        assert result.error is TransportError.BLOCKED
        assert result.error_message is not None
        assert "receiver.example resolves to" in result.error_message
        assert resolver.calls == [("receiver.example", 443)]
        assert connects.addresses == []

    def test_the_checked_address_is_the_one_connected_to(self, serve: Callable[..., Server]) -> None:
        """A rebinding name: allowed on the first lookup, private on any later one."""
        server = serve()
        resolver = StubResolver(["127.0.0.1"], ["10.0.0.5"])
        result = transport(resolver=resolver).send(
            f"http://receiver.example:{server.port}/hooks", b"{}", {}, TIMEOUT)
        assert result.status == 200
        assert resolver.calls == [("receiver.example", server.port)]
        assert server.seen[0].headers["Host"] == f"receiver.example:{server.port}"

    def test_every_new_connection_is_checked_again(self, serve: Callable[..., Server],
                                                   connects: Connects) -> None:
        server = serve(close_each=True)
        resolver = StubResolver(["127.0.0.1"], ["10.0.0.5"])
        sender = transport(resolver=resolver)
        url = f"http://receiver.example:{server.port}/hooks"
        assert sender.send(url, b"{}", {}, TIMEOUT).status == 200
        second = sender.send(url, b"{}", {}, TIMEOUT)
        assert second.error is TransportError.BLOCKED
        assert len(resolver.calls) == 2
        assert connects.addresses == [("127.0.0.1", server.port)]
        assert len(server.seen) == 1

    def test_a_name_that_does_not_resolve_is_a_retryable_connection_error(self) -> None:
        def nothing(host: str, port: int) -> list[ResolvedAddress]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        result = transport(resolver=nothing).send("https://gone.example/hooks", b"{}", {}, TIMEOUT)
        assert result.error is TransportError.CONNECT
        assert result.error_class in ("ConnectionError", "gaierror", "ClientConnectorDNSError")


class TestNamesDnsCannotCarry:
    """A stored URL whose host the resolver cannot even encode fails its attempt, never the worker."""

    @pytest.mark.parametrize("url", ["https://a..test/hooks", "https://" + "a" * 64 + ".test/"])
    def test_an_unencodable_host_is_an_invalid_request_without_a_lookup(
        self, connects: Connects, url: str
    ) -> None:
        result = transport().send(url, b"{}", {}, TIMEOUT)
        assert result.error is TransportError.INVALID_REQUEST
        assert result.error_message is not None and "host" in result.error_message
        assert connects.addresses == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for receiver.test, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=receiver.test",
         "-addext", "subjectAltName=DNS:receiver.test"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.usefixtures("no_system_dns")
class TestTls:
    """TLS connects to the pinned address but sends and verifies the URL's hostname."""

    @pytest.fixture
    def tls_server(self, serve: Callable[..., Server], certificate: tuple[Path, Path]) -> Server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        return serve(tls=context)

    def test_the_hostname_is_the_sni_and_the_certificate_name(
        self, tls_server: Server, certificate: tuple[Path, Path]
    ) -> None:
        sender = transport(resolver=StubResolver(["127.0.0.1"]), ca_bundle=str(certificate[0]))
        result = sender.send(f"https://receiver.test:{tls_server.port}/hooks", b"{}", {}, TIMEOUT)
        assert result.status == 200
        assert tls_server.server_names == ["receiver.test"]

    def test_a_certificate_for_another_name_is_rejected(
        self, tls_server: Server, certificate: tuple[Path, Path]
    ) -> None:
        sender = transport(resolver=StubResolver(["127.0.0.1"]), ca_bundle=str(certificate[0]))
        result = sender.send(f"https://other.test:{tls_server.port}/hooks", b"{}", {}, TIMEOUT)
        assert result.status is None
        assert result.error is TransportError.CONNECT
        assert result.error_class in ("SSLError", "ClientConnectorCertificateError")
        assert "other.test" in (result.error_message or "")
        assert tls_server.seen == []


class TestEgressProxy:
    """With a proxy, the destination is checked first and the request goes to the proxy."""

    @pytest.mark.usefixtures("no_system_dns")
    def test_an_allowed_destination_is_handed_to_the_proxy(
        self, serve: Callable[..., Server], connects: Connects
    ) -> None:
        proxy = serve()
        resolver = StubResolver(["93.184.215.14"])  # public: judged, never contacted
        sender = transport(HTTP_ONLY, resolver=resolver, proxy=f"http://127.0.0.1:{proxy.port}")
        result = sender.send("http://receiver.example/hooks", b"{}", {}, TIMEOUT)
        assert result.status == 200
        assert proxy.seen[0].request_line == "POST http://receiver.example/hooks HTTP/1.1"
        assert resolver.calls == [("receiver.example", 80)]
        assert connects.addresses == [("127.0.0.1", proxy.port)]

    @pytest.mark.usefixtures("no_system_dns")
    def test_a_blocked_destination_never_reaches_the_proxy(self, serve: Callable[..., Server]) -> None:
        proxy = serve()
        sender = transport(HTTP_ONLY, resolver=StubResolver(["10.0.0.5"]),
                           proxy=f"http://127.0.0.1:{proxy.port}")
        result = sender.send("http://receiver.example/hooks", b"{}", {}, TIMEOUT)
        assert result.error is TransportError.BLOCKED
        assert proxy.seen == []

    def test_the_settings_route_deliveries_through_the_proxy(
        self, serve: Callable[..., Server], listen: Callable[[str], Listener],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    ) -> None:
        clear_hookline_env(monkeypatch)
        proxy, receiver = serve(), listen("127.0.0.1")
        monkeypatch.setenv("HOOKLINE_EGRESS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("HOOKLINE_ALLOW_HTTP", "true")
        monkeypatch.setenv("HOOKLINE_EGRESS_ALLOW", "127.0.0.1")
        hookline = Hookline(get_settings(data_dir=tmp_path))
        url = f"http://localhost:{receiver.port}/hooks"
        result = hookline.transport.send(url, b"{}", {}, TIMEOUT)
        assert result.status == 200
        assert proxy.seen[0].request_line == f"POST {url} HTTP/1.1"
        assert receiver.connections() == 0

    def test_with_a_proxy_the_settings_still_block_loopback(
        self, serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    ) -> None:
        clear_hookline_env(monkeypatch)
        proxy = serve()
        monkeypatch.setenv("HOOKLINE_EGRESS_PROXY", f"http://127.0.0.1:{proxy.port}")
        hookline = Hookline(get_settings(data_dir=tmp_path, allow_http=True))
        result = hookline.transport.send("http://localhost:9/hooks", b"{}", {}, TIMEOUT)
        assert result.error is TransportError.BLOCKED
        assert proxy.seen == []
