"""HTTP transport: the one place where webhook bytes leave the process.

One pooled ``requests.Session`` per thread (sessions are not thread-safe), keep-alive
on, redirects never followed, explicit (connect, read) timeouts always. Returns a
:class:`HttpResult` instead of raising, so the caller classifies every outcome the
same way. Tests swap in any object with the same ``send`` method.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter

from app.classification import TransportError

#: Largest body Hookline reads back from a receiver; the rest is discarded.
MAX_RESPONSE_READ_BYTES = 64 * 1024


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


class RequestsTransport:
    """POSTs over pooled keep-alive connections, one session per thread."""

    def __init__(self, *, user_agent: str, excerpt_bytes: int = 1024, pool_size: int = 32) -> None:
        self._user_agent = user_agent
        self._excerpt_bytes = excerpt_bytes
        self._pool_size = pool_size
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            adapter = HTTPAdapter(pool_connections=self._pool_size, pool_maxsize=self._pool_size,
                                  max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self._user_agent
            self._local.session = session
        return session

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> HttpResult:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000.0

        try:
            response = self._session().post(
                url, data=body, headers=dict(headers), timeout=timeout,
                allow_redirects=False, stream=True,
            )
        except requests.exceptions.ConnectTimeout as exc:
            return _failure(TransportError.TIMEOUT, exc, elapsed())
        except requests.exceptions.Timeout as exc:
            return _failure(TransportError.TIMEOUT, exc, elapsed())
        except requests.exceptions.ConnectionError as exc:
            return _failure(TransportError.CONNECT, exc, elapsed())
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader) as exc:
            return _failure(TransportError.INVALID_REQUEST, exc, elapsed())
        except requests.exceptions.RequestException as exc:
            return _failure(TransportError.PROTOCOL, exc, elapsed())
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


def _failure(kind: TransportError, exc: Exception, duration_ms: float) -> HttpResult:
    return HttpResult(
        status=None,
        duration_ms=duration_ms,
        error=kind,
        error_class=type(exc).__name__,
        error_message=str(exc)[:500],
    )
