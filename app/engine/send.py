"""Step 3, send: many attempts in flight at once per worker process, over aiohttp.

One event loop runs in a daemon thread of each worker process (started after the
fork, on first use) with one ``aiohttp.ClientSession``: keep-alive connections are
reused per host across every batch the process runs. A batch's requests are sent
concurrently; the task thread waits for the whole batch.

What keeps one receiver from hurting the others:

* **A total deadline per attempt**: connect + read timeout, for the whole attempt,
  body included. A receiver that trickles bytes is cut off at the deadline, not at
  each read.
* **A cap per endpoint** (``HOOKLINE_ENDPOINT_CONCURRENCY`` in flight per process).
  A request that finds its endpoint's slots taken waits ``HOOKLINE_SLOT_WAIT`` at
  most; after that it is *deferred*: nothing is sent, no attempt is counted, and the
  delivery is due again shortly. So a black-holed endpoint holds at most its cap,
  and its circuit (:mod:`app.engine.circuit`) soon stops even that.
* **Bounded reads**: at most ``MAX_RESPONSE_READ_BYTES`` of a response body is read;
  a longer body's connection is closed, not drained.

Destination safety (:mod:`app.egress`) holds as in :mod:`app.transport`: every name is
resolved by :class:`CheckedAsyncResolver`, which refuses the name if any address is
not allowed, and aiohttp connects only to the addresses it returned (TLS still uses
the URL's host for SNI and the certificate). IP literals are checked from the URL.
Redirects are never followed. With a proxy, the destination is resolved and checked
before the request is handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from app.classification import TransportError
from app.egress import EgressPolicy
from app.errors import BlockedDestination, InvalidEndpointURL
from app.transport import (
    MAX_RESPONSE_READ_BYTES,
    CheckedResolver,
    HttpResult,
    Transport,
    failure,
    system_resolver,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """One attempt's request; *key* groups requests under one cap (the endpoint id)."""

    key: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    timeout: tuple[float, float]
    #: Seconds to wait before sending: until the endpoint's rate-limit token is due.
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Deferred:
    """Nothing was sent: the endpoint's slots stayed taken (not an attempt)."""

    reason: str


SendResult = HttpResult | Deferred


class LoopThread:
    """An asyncio event loop running in a daemon thread; sync code submits coroutines."""

    def __init__(self, name: str = "hookline-sender") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def submit(self, coro: Awaitable[T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T]) -> T:
        return self.submit(coro).result()

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()


class CheckedAsyncResolver(AbstractResolver):
    """aiohttp's face of :class:`app.transport.CheckedResolver`: resolves in a thread and
    returns the addresses only if the policy allows every one of them."""

    def __init__(self, checked: CheckedResolver) -> None:
        self.check = checked.resolve

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        answers = await loop.run_in_executor(None, self.check, host, port)
        return [
            ResolveResult(hostname=host, host=str(sockaddr[0]), port=int(sockaddr[1]),
                          family=fam, proto=0, flags=socket.AI_NUMERICHOST)
            for fam, sockaddr in answers
        ]

    async def close(self) -> None:
        return None


class AsyncSender:
    """Sends batches of requests concurrently, capped per endpoint; never raises per request."""

    #: A batch's requests are in flight together: each needs only its own deadline.
    concurrent = True

    def __init__(self, *, user_agent: str, excerpt_bytes: int = 1024,
                 policy: EgressPolicy | None = None,
                 resolver: Callable[[str, int], Sequence[Any]] = system_resolver,
                 proxy: str | None = None, ca_bundle: str | None = None,
                 per_endpoint: int = 8, slot_wait: float = 1.0, max_connections: int = 512) -> None:
        self._user_agent = user_agent
        self._excerpt_bytes = excerpt_bytes
        self._policy = policy or EgressPolicy()
        proxy_host = urlsplit(proxy).hostname if proxy else None
        self._resolver = CheckedAsyncResolver(CheckedResolver(
            self._policy, resolver, frozenset({proxy_host}) if proxy_host else frozenset()))
        self._proxy = proxy
        self._ca_bundle = ca_bundle
        self._per_endpoint = per_endpoint
        self._slot_wait = slot_wait
        self._max_connections = max_connections
        self._loop_thread: LoopThread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._lock = threading.Lock()

    # -- sync face -----------------------------------------------------------------------
    def send_many(self, requests: Sequence[OutgoingRequest],
                  skip: Callable[[OutgoingRequest], bool] | None = None,
                  seen: Callable[[OutgoingRequest, HttpResult], None] | None = None,
                  ) -> list[SendResult]:
        """Send *requests* concurrently; one result per request, in order.

        *skip* is asked just before each request goes (after it got a slot): True
        defers it (e.g. its endpoint was disabled by an earlier answer in this batch).
        *seen* is told each answer as it arrives.
        """
        if not requests:
            return []
        return self._loop().run(self._send_all(requests, skip, seen))

    def close(self) -> None:
        with self._lock:
            thread, self._loop_thread = self._loop_thread, None
        if thread is None:
            return
        if self._session is not None:
            with contextlib.suppress(Exception):
                thread.run(self._session.close())
            self._session = None
        thread.stop()

    def _loop(self) -> LoopThread:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = LoopThread()
            return self._loop_thread

    # -- the loop's side -------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context: ssl.SSLContext | bool = True
            if self._ca_bundle is not None:
                ssl_context = ssl.create_default_context(cafile=self._ca_bundle)
            connector = aiohttp.TCPConnector(
                resolver=self._resolver, limit=self._max_connections, limit_per_host=0,
                use_dns_cache=False, ssl=ssl_context, enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False,
                headers={"User-Agent": self._user_agent}, skip_auto_headers=("Content-Type",),
            )
        return self._session

    def _slot(self, key: str) -> asyncio.Semaphore:
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) > 10_000:  # forget idle endpoints' slots
                self._slots = {k: s for k, s in self._slots.items() if s.locked()}
            slot = self._slots[key] = asyncio.Semaphore(self._per_endpoint)
        return slot

    async def _send_all(self, requests: Sequence[OutgoingRequest],
                        skip: Callable[[OutgoingRequest], bool] | None,
                        seen: Callable[[OutgoingRequest, HttpResult], None] | None,
                        ) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(r, skip, seen) for r in requests)))

    async def _send_one(self, request: OutgoingRequest,
                        skip: Callable[[OutgoingRequest], bool] | None,
                        seen: Callable[[OutgoingRequest, HttpResult], None] | None,
                        ) -> SendResult:
        if request.delay > 0:
            await asyncio.sleep(request.delay)
        slot = self._slot(request.key)
        try:
            await asyncio.wait_for(slot.acquire(), self._slot_wait)
        except TimeoutError:
            return Deferred(f"endpoint busy: {self._per_endpoint} attempts already in flight")
        try:
            if skip is not None and skip(request):
                return Deferred("skipped")
            result = await self.attempt(request)
            if seen is not None:
                seen(request, result)
            return result
        finally:
            slot.release()

    def send(self, url: str, body: bytes, headers: Mapping[str, str],
             timeout: tuple[float, float]) -> HttpResult:
        """One request, waited for (the :class:`~app.transport.Transport` face)."""
        request = OutgoingRequest(key=url, url=url, body=body, headers=headers, timeout=timeout)
        return self._loop().run(self.attempt(request))

    async def attempt(self, request: OutgoingRequest) -> HttpResult:
        """One attempt, within its total deadline; every failure becomes a result."""
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000.0

        connect, read = request.timeout
        try:
            destination = self._policy.check_url(request.url)
            if destination.address is not None:
                self._policy.check_address(destination.address)
            if self._proxy is not None:
                await asyncio.get_running_loop().run_in_executor(
                    None, self._resolver.check, destination.host, destination.port)
            async with asyncio.timeout(connect + read):
                return await self._post(request, connect, read, elapsed)
        except BlockedDestination as exc:
            return failure(TransportError.BLOCKED, exc, elapsed())
        except InvalidEndpointURL as exc:
            return failure(TransportError.INVALID_REQUEST, exc, elapsed())
        except socket.gaierror as exc:
            return failure(TransportError.CONNECT, exc, elapsed())
        except TimeoutError as exc:
            return failure(TransportError.TIMEOUT, exc, elapsed(),
                            message=f"no complete answer within {connect + read:g} s")
        except aiohttp.ClientConnectorDNSError as exc:
            return failure(TransportError.CONNECT, exc, elapsed())
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError,
                ConnectionError) as exc:
            return failure(TransportError.CONNECT, exc, elapsed())
        except (aiohttp.InvalidURL, ValueError, UnicodeError, LookupError) as exc:
            return failure(TransportError.INVALID_REQUEST, exc, elapsed())
        except (aiohttp.ClientError, OSError) as exc:
            return failure(TransportError.PROTOCOL, exc, elapsed())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything else is this attempt's failure, never the batch's
            return failure(TransportError.PROTOCOL, exc, elapsed())

    async def _post(self, request: OutgoingRequest, connect: float, read: float,
                    elapsed: Callable[[], float]) -> HttpResult:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        async with self._client().post(
            request.url, data=request.body, headers=dict(request.headers), timeout=timeout,
            allow_redirects=False, proxy=self._proxy,
        ) as response:
            chunks: list[bytes] = []
            received = 0
            complete = False
            try:
                while received < MAX_RESPONSE_READ_BYTES:
                    chunk = await response.content.read(16384)
                    if not chunk:
                        complete = True
                        break
                    chunks.append(chunk)
                    received += len(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
                complete = False  # the status line arrived; a broken body keeps the verdict
            if not complete:
                response.close()  # do not drain a huge or broken body: drop the connection
            raw = b"".join(chunks)
            return HttpResult(
                status=response.status, duration_ms=elapsed(),
                headers={k: v for k, v in response.headers.items()},
                body_excerpt=raw[: self._excerpt_bytes].decode("utf-8", errors="replace"),
            )


class ThreadedSender:
    """A synchronous :class:`~app.transport.Transport` behind the same face, one at a time.

    For tests and for a transport without an async twin: requests go in order, so a
    scripted receiver answers them in order.
    """

    concurrent = False

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def send_many(self, requests: Sequence[OutgoingRequest],
                  skip: Callable[[OutgoingRequest], bool] | None = None,
                  seen: Callable[[OutgoingRequest, HttpResult], None] | None = None,
                  ) -> list[SendResult]:
        results: list[SendResult] = []
        begun = time.monotonic()
        for request in requests:
            if skip is not None and skip(request):
                results.append(Deferred("skipped"))
                continue
            time.sleep(max(begun + request.delay - time.monotonic(), 0.0))
            try:
                result = self.transport.send(request.url, request.body, request.headers,
                                             request.timeout)
            except Exception as exc:  # a transport bug is this request's failure only
                result = failure(TransportError.PROTOCOL, exc, 0.0)
            if seen is not None:
                seen(request, result)
            results.append(result)
        return results

    def close(self) -> None:
        return None
