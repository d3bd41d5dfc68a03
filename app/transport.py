"""HTTP transport: the one place where webhook bytes leave the process.

One pooled ``requests.Session`` per thread (sessions are not thread-safe), keep-alive
on, redirects never followed, explicit (connect, read) timeouts always. Returns a
:class:`HttpResult` instead of raising, so the caller classifies every outcome the
same way. Tests swap in any object with the same ``send`` method.

Destination safety (:mod:`app.egress`) is enforced here, where the socket is opened.
Each new connection resolves its hostname, checks every address it got, and
connects only to one of those checked addresses: a second DNS answer is never asked
for, so a name that rebinds to a private address after a check cannot be reached.
TLS still sends the URL's hostname as SNI and verifies the certificate against it.
With ``HOOKLINE_EGRESS_PROXY`` set the connection goes to the proxy instead; the
destination is resolved and checked before the request is handed over, and the
proxy resolves it again on its own.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from app.classification import TransportError
from app.egress import EgressPolicy
from app.errors import BlockedDestination, InvalidEndpointURL

#: Largest body Hookline reads back from a receiver; the rest is discarded.
MAX_RESPONSE_READ_BYTES = 64 * 1024

#: One address a name resolved to: the socket family and the address to connect to.
ResolvedAddress = tuple[socket.AddressFamily, tuple[Any, ...]]
#: Host and port in, addresses out; :func:`system_resolver` unless a test stubs it.
Resolver = Callable[[str, int], Sequence[ResolvedAddress]]


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int | None
    duration_ms: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body_excerpt: str = ""
    error: TransportError | None = None
    error_class: str | None = None
    error_message: str | None = None


class Transport(Protocol):
    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> HttpResult: ...


def system_resolver(host: str, port: int) -> list[ResolvedAddress]:
    """The system's answer for *host*: IPv4 and, where the machine has it, IPv6 (as urllib3)."""
    return [(family, tuple(sockaddr)) for family, _type, _proto, _name, sockaddr
            in socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)]


class CheckedResolver:
    """Resolves a host and returns its addresses only if the policy allows every one of them.

    *exempt* names (a configured proxy) are resolved without the policy: the operator
    chose them, and the destination behind a proxy is checked separately.
    """

    def __init__(self, policy: EgressPolicy, resolver: Resolver = system_resolver,
                 exempt: frozenset[str] = frozenset()) -> None:
        self.policy = policy
        self._resolver = resolver
        self._exempt = exempt

    def resolve(self, host: str, port: int) -> list[ResolvedAddress]:
        """Every address of *host*; ``BlockedDestination`` if any one is refused.

        One refused address refuses the name: connecting only to the allowed ones would
        still let a hostile name choose which of our neighbours to probe.
        """
        host = host.strip("[]")
        answers = list(self._resolver(host, port))
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no addresses")
        if host not in self._exempt:
            for _family, sockaddr in answers:
                self.policy.check_address(str(sockaddr[0]), host=host)
        return answers


def _connect_checked(conn: HTTPConnection, resolver: CheckedResolver) -> socket.socket:
    """What urllib3's ``_new_conn`` does, connecting only to addresses the policy checked."""
    try:
        addresses = resolver.resolve(conn._dns_host, conn.port)  # the name as given, trailing dot too
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    error: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        return sock
    if isinstance(error, TimeoutError):
        raise ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        ) from error
    raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error


class PinnedHTTPConnection(HTTPConnection):
    """An urllib3 connection that reaches only addresses its :class:`CheckedResolver` allowed."""

    def __init__(self, *args: Any, checked_resolver: CheckedResolver, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked_resolver = checked_resolver

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.checked_resolver)


class PinnedHTTPSConnection(HTTPSConnection):
    """The TLS twin of :class:`PinnedHTTPConnection`: SNI and certificate use the URL's host."""

    def __init__(self, *args: Any, checked_resolver: CheckedResolver, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked_resolver = checked_resolver

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.checked_resolver)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = PinnedHTTPSConnection


class _PinnedPoolManager(PoolManager):
    """A pool manager whose pools open :class:`PinnedHTTPConnection` s with one resolver."""

    def __init__(self, *args: Any, checked_resolver: CheckedResolver, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked_resolver = checked_resolver
        self.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def _new_pool(self, scheme: str, host: str, port: int,
                  request_context: dict[str, Any] | None = None) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        # Not through connection_pool_kw: the pool key is built from those and has no such field.
        pool.conn_kw["checked_resolver"] = self.checked_resolver
        return pool


class _PinnedAdapter(HTTPAdapter):
    """``HTTPAdapter`` whose direct connections go through a :class:`CheckedResolver`."""

    def __init__(self, checked_resolver: CheckedResolver, **kwargs: Any) -> None:
        self._checked_resolver = checked_resolver  # init_poolmanager runs inside super().__init__
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK,
                         **pool_kwargs: Any) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _PinnedPoolManager(num_pools=connections, maxsize=maxsize, block=block,
                                              checked_resolver=self._checked_resolver, **pool_kwargs)


class RequestsTransport:
    """POSTs over pooled keep-alive connections, one session per thread, to allowed places only.

    *policy* decides where deliveries may go (the default refuses plain http and every
    non-public address); *resolver* is how names become addresses; *proxy* is an
    http(s) proxy URL every request goes through; *ca_bundle* replaces the system's
    certificate authorities (a private CA, or a test's own).
    """

    def __init__(self, *, user_agent: str, excerpt_bytes: int = 1024, pool_size: int = 32,
                 policy: EgressPolicy | None = None, resolver: Resolver = system_resolver,
                 proxy: str | None = None, ca_bundle: str | None = None) -> None:
        self._user_agent = user_agent
        self._excerpt_bytes = excerpt_bytes
        self._pool_size = pool_size
        self._policy = policy or EgressPolicy()
        self._resolver = CheckedResolver(self._policy, resolver)
        self._proxy = proxy
        self._ca_bundle = ca_bundle
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxy or CA bundle from the environment by accident
            adapter = _PinnedAdapter(self._resolver, pool_connections=self._pool_size,
                                     pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self._user_agent
            if self._proxy is not None:
                session.proxies = {"http": self._proxy, "https": self._proxy}
            if self._ca_bundle is not None:
                session.verify = self._ca_bundle
            self._local.session = session
        return session

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> HttpResult:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000.0

        session = self._session()
        try:
            prepared = session.prepare_request(
                requests.Request("POST", url, data=body, headers=dict(headers)))
            # The prepared URL carries the host as it will be looked up (IDNA-encoded).
            destination = self._policy.check_url(prepared.url or url)
            if self._proxy is not None:
                # The socket goes to the proxy: check the destination before handing it over.
                self._resolver.resolve(destination.host, destination.port)
            response = session.send(prepared, timeout=timeout, allow_redirects=False, stream=True)
        except BlockedDestination as exc:
            return failure(TransportError.BLOCKED, exc, elapsed())
        except InvalidEndpointURL as exc:
            return failure(TransportError.INVALID_REQUEST, exc, elapsed())
        except socket.gaierror as exc:
            return failure(TransportError.CONNECT, exc, elapsed())
        except requests.exceptions.ConnectTimeout as exc:
            return failure(TransportError.TIMEOUT, exc, elapsed())
        except requests.exceptions.Timeout as exc:
            return failure(TransportError.TIMEOUT, exc, elapsed())
        except requests.exceptions.ConnectionError as exc:
            return failure(TransportError.CONNECT, exc, elapsed())
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader) as exc:
            return failure(TransportError.INVALID_REQUEST, exc, elapsed())
        except requests.exceptions.RequestException as exc:
            return failure(TransportError.PROTOCOL, exc, elapsed())
        chunks: list[bytes] = []
        received = 0
        try:
            # Reading to the end lets the connection go back to the pool; a body over
            # the limit is cut off and its connection dropped.
            for chunk in response.iter_content(chunk_size=16384):
                chunks.append(chunk)
                received += len(chunk)
                if received >= MAX_RESPONSE_READ_BYTES:
                    break
        except requests.exceptions.RequestException:
            pass  # the status line arrived; a broken body does not change the verdict
        finally:
            response.close()
        raw = b"".join(chunks)
        return HttpResult(
            status=response.status_code,
            duration_ms=elapsed(),
            headers=dict(response.headers),
            body_excerpt=raw[: self._excerpt_bytes].decode("utf-8", errors="replace"),
        )


def failure(kind: TransportError, exc: BaseException, duration_ms: float,
            message: str | None = None) -> HttpResult:
    """The result of an attempt that got no HTTP status: the error's kind, class and text."""
    return HttpResult(status=None, duration_ms=duration_ms, error=kind,
                      error_class=type(exc).__name__,
                      error_message=(message or str(exc) or type(exc).__name__)[:500])
