"""Builds the FastAPI application around one :class:`~app.client.Hookline` object."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import console
from app.api import accesslog, deliveries, events, incoming, replays, system, webhooks
from app.api import metrics as metrics_route
from app.api.validation import utf8_safe, validation_problem
from app.api.waiting import WaitSlots
from app.client import Hookline
from app.errors import (
    HooklineError,
    InputError,
    InvalidSelection,
    UnknownEndpoint,
    UnknownIncomingWebhook,
    UnknownTenant,
)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request body over *limit* bytes is answered 413, never read whole."""

    def __init__(self, app: ASGIApp, limit: int, batch_limit: int | None = None) -> None:
        self.app = app
        self.default_limit = limit
        self.batch_limit = batch_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A batch of events may be larger than any other request.
        limit = (self.batch_limit if str(scope.get("path", "")).endswith("/events/batch")
                 else self.default_limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _json(send, 400, "malformed Content-Length")
                    return
                if declared > limit:
                    await _json(send, 413, f"request body over {limit} bytes")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _json(send, 413, f"request body over {limit} bytes")


async def _json(send: Send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _status_for(exc: HooklineError) -> int:
    if isinstance(exc, UnknownEndpoint | UnknownTenant | UnknownIncomingWebhook):
        return 404
    if isinstance(exc, InvalidSelection | InputError):
        return 422
    return 500


def create_app(hookline: Hookline | None = None) -> FastAPI:
    """The API app; without *hookline*, one is built from the environment on startup."""
    api = FastAPI(
        title="Hookline management API",
        version="1",
        description="Tenants' webhooks, events, delivery logs, dead letters and incoming webhooks. "
                    "Send the tenant's API key in the X-API-KEY header; calls to an incoming "
                    "webhook (POST /hooks/{token}) need none: the token is the credential.",
    )
    api.state.hookline = hookline or Hookline.from_env()
    api.state.test_send_waits = WaitSlots(api.state.hookline.settings.api_waiting_test_sends)
    # Whatever server runs the app, its access log never shows an incoming webhook's token.
    accesslog.install()
    api.include_router(webhooks.router)
    api.include_router(events.router)
    api.include_router(deliveries.router)
    api.include_router(system.router)
    api.include_router(incoming.router)
    api.include_router(incoming.hooks_router)
    # The operator web console (/console): server-rendered pages over the same functions.
    console.install(api, api.state.hookline)
    api.include_router(replays.router)
    api.include_router(metrics_route.router)

    @api.exception_handler(HooklineError)
    async def hookline_error(_request: Request, exc: HooklineError) -> JSONResponse:
        status = _status_for(exc)
        detail: Any = "not found" if status == 404 else utf8_safe(str(exc))
        return JSONResponse({"detail": detail}, status_code=status)

    api.add_exception_handler(RequestValidationError, validation_problem)

    @api.exception_handler(DataError)
    async def unstorable(_request: Request, _exc: DataError) -> JSONResponse:
        # A value the database refuses to store (a last line of defence: inputs are
        # validated before they reach it). Nothing was written.
        return JSONResponse({"detail": "a value in the request cannot be stored"}, status_code=422)

    settings = api.state.hookline.settings
    api.add_middleware(BodyLimit, limit=settings.api_max_request_bytes,
                       batch_limit=settings.api_max_batch_request_bytes)
    return api
