"""The console's pages and actions, under ``/console``. Each route is a few lines over the
functions the JSON API and the CLI use (:mod:`app.admin`, :mod:`app.deadletters`) and
the reads in :mod:`app.console.queries`.

Pages are rendered by Jinja2 with autoescaping on, so nothing a receiver answered can
become markup. A tenant's session sees its own tenant only; anything else is the same
404 as an id that does not exist. Responses carry a strict Content-Security-Policy
(scripts and styles from ``/console/static`` only) and may not be framed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment

from app import admin, deadletters
from app.client import Hookline
from app.console import queries
from app.console.auth import (
    COOKIE_NAME,
    CSRF_FIELD,
    SESSION_MAX_AGE_SECONDS,
    ConsoleSession,
    Sessions,
    Viewer,
)
from app.console.filters import DeliveryFilter, parse_delivery_filter
from app.console.forms import Form, FormDep
from app.console.headers import shown_headers
from app.errors import InvalidSelection, UnknownEndpoint
from app.models import DeadReason, DeliveryState, utcnow

router = APIRouter(prefix="/console", include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
CursorQuery = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


def _hookline(request: Request) -> Hookline:
    hookline: Hookline = request.app.state.hookline
    return hookline


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def _state(request: Request) -> ConsoleSession | None:
    return _sessions(request).load(request.cookies.get(COOKIE_NAME))


def require_viewer(request: Request) -> Viewer:
    """The logged-in viewer; anyone else is sent to the login page."""
    viewer = _sessions(request).viewer(_state(request))
    if viewer is None:
        raise HTTPException(303, "log in first", headers={"Location": "/console/login"})
    return viewer


ViewerDep = Annotated[Viewer, Depends(require_viewer)]


def set_session(response: Response, request: Request, state: ConsoleSession) -> None:
    response.set_cookie(COOKIE_NAME, _sessions(request).dump(state), max_age=SESSION_MAX_AGE_SECONDS,
                        path="/console", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def page(request: Request, template: str, *, status: int = 200,
         viewer: Viewer | None = None, state: ConsoleSession | None = None,
         **context: Any) -> HTMLResponse:
    """*template* rendered with the viewer, the session's CSRF token and *context*."""
    state = state or _state(request)
    env: Environment = request.app.state.console_templates
    html = env.get_template(template).render(
        viewer=viewer, csrf_field=CSRF_FIELD, csrf_token=state.csrf if state else "",
        path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def not_found(request: Request, viewer: Viewer) -> HTMLResponse:
    return page(request, "not_found.html", status=404, viewer=viewer)


def _query(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


# -- login ---------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request) -> Response:
    state = _state(request)
    if _sessions(request).viewer(state) is not None:
        return RedirectResponse("/console", 303)
    state = state or _sessions(request).anonymous()
    response = page(request, "login.html", state=state, failed=False)
    set_session(response, request, state)
    return response


@router.post("/login")
def login(request: Request, form: FormDep) -> Response:
    state = _sessions(request).login(form.get("key"))
    if state is None:
        # The same page whatever was wrong: unknown, revoked or another kind of key.
        return page(request, "login.html", status=401, failed=True)
    response = RedirectResponse("/console", 303)
    set_session(response, request, state)
    return response


@router.post("/logout")
def logout(request: Request, form: FormDep) -> Response:
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(COOKIE_NAME, path="/console", httponly=True, samesite="strict")
    return response


# -- throughput ----------------------------------------------------------------------


@router.get("")
def overview(request: Request, viewer: ViewerDep) -> Response:
    rates = queries.throughput(_hookline(request).sessions, viewer.tenant_id, utcnow())
    return page(request, "throughput.html", viewer=viewer, rates=rates)


@router.get("/throughput.json")
def throughput_json(request: Request) -> Response:
    viewer = _sessions(request).viewer(_state(request))
    if viewer is None:
        return JSONResponse({"detail": "log in first"}, status_code=401)
    rates = queries.throughput(_hookline(request).sessions, viewer.tenant_id, utcnow())
    return JSONResponse({
        "at": utcnow().isoformat(), "windowSeconds": rates.window_seconds,
        "deliveredPerSecond": rates.delivered_per_second,
        "attemptsPerSecond": rates.attempts_per_second,
        "failedAttemptsPerSecond": rates.failed_attempts_per_second,
        "waiting": rates.waiting, "inFlight": rates.in_flight, "dead": rates.dead,
    }, headers={"Cache-Control": "no-store"})


# -- deliveries ----------------------------------------------------------------------


@router.get("/deliveries")
def deliveries(request: Request, viewer: ViewerDep, before: CursorQuery = None) -> Response:
    flt, errors = parse_delivery_filter(_query(request), utcnow())
    found = None if errors else queries.list_deliveries(
        _hookline(request).sessions, viewer.tenant_id, flt, cursor=before)
    return page(request, "deliveries.html", status=400 if errors else 200, viewer=viewer,
                flt=flt, errors=errors, found=found, states=list(DeliveryState),
                reasons=list(DeadReason))


@router.get("/deliveries/{delivery_id}")
def delivery(request: Request, viewer: ViewerDep, delivery_id: IdPath) -> Response:
    hookline = _hookline(request)
    detail = queries.get_delivery(hookline.sessions, viewer.tenant_id, delivery_id)
    if detail is None:
        return not_found(request, viewer)
    moments = [a.started_at for a in detail.row.view.attempts] or [utcnow()]
    headers = [shown_headers(detail.endpoint, detail.event, delivery_id, hookline.catalogue, at)
               for at in moments]
    return page(request, "delivery.html", viewer=viewer, d=detail.row, headers=headers,
                attempts_shown=bool(detail.row.view.attempts))


# -- dead letters --------------------------------------------------------------------


def _dead_letter_filter(flt: DeliveryFilter, viewer: Viewer) -> deadletters.DeadLetterFilter:
    return deadletters.DeadLetterFilter(endpoint_id=flt.webhook_id, event_type=flt.event_type,
                                        reason=flt.reason, since=flt.since, tenant_id=viewer.tenant_id)


def _dead_letters_page(request: Request, viewer: Viewer, flt: DeliveryFilter,
                       errors: dict[str, str], after: str | None = None) -> HTMLResponse:
    rows = None
    if not errors:
        rows = deadletters.list_dead_letters(_hookline(request).sessions,
                                             _dead_letter_filter(flt, viewer),
                                             limit=queries.PAGE_SIZE + 1, after=after)
    more = rows is not None and len(rows) > queries.PAGE_SIZE
    return page(request, "dead_letters.html", status=400 if errors else 200, viewer=viewer,
                flt=flt, errors=errors, rows=None if rows is None else rows[:queries.PAGE_SIZE],
                next_cursor=rows[queries.PAGE_SIZE - 1].delivery_id if rows and more else None,
                reasons=list(DeadReason))


@router.get("/dead-letters")
def dead_letters(request: Request, viewer: ViewerDep, after: CursorQuery = None) -> Response:
    flt, errors = parse_delivery_filter(_query(request), utcnow())
    return _dead_letters_page(request, viewer, flt, errors, after)


def _form_filter(form: Form) -> tuple[DeliveryFilter, dict[str, str]]:
    fields = {name: form.get(name) for name in ("webhook", "event_type", "reason", "since")}
    return parse_delivery_filter(fields, utcnow())


@router.post("/dead-letters/requeue")
def requeue(request: Request, viewer: ViewerDep, form: FormDep) -> Response:
    """One dead letter (``id``), or those a filter matches: ``preview`` counts them
    (a dry run), ``confirm`` requeues them."""
    hookline = _hookline(request)
    mode = form.get("mode")
    if mode == "one":
        delivery_id = form.get("id")
        owner = queries.delivery_tenant(hookline.sessions, delivery_id) if delivery_id else None
        if owner is None or (viewer.tenant_id is not None and owner != viewer.tenant_id):
            return not_found(request, viewer)
        report = deadletters.requeue(hookline.sessions, hookline.dispatcher, ids=[delivery_id],
                                     flt=deadletters.DeadLetterFilter(tenant_id=owner))
        return page(request, "requeue_result.html", viewer=viewer, report=report)
    if mode not in ("preview", "confirm"):
        raise HTTPException(400, "unknown requeue mode")
    flt, errors = _form_filter(form)
    if errors:
        return _dead_letters_page(request, viewer, flt, errors)
    try:
        report = deadletters.requeue(hookline.sessions, hookline.dispatcher,
                                     select_all=flt.is_empty(), flt=_dead_letter_filter(flt, viewer),
                                     dry_run=mode == "preview")
    except InvalidSelection as exc:
        return _dead_letters_page(request, viewer, flt, {"filter": str(exc)})
    if mode == "preview":
        return page(request, "requeue_preview.html", viewer=viewer, report=report, flt=flt,
                    since_exact=flt.since.isoformat() if flt.since else "")
    return page(request, "requeue_result.html", viewer=viewer, report=report)


# -- endpoints -----------------------------------------------------------------------


@router.get("/endpoints")
def endpoints(request: Request, viewer: ViewerDep) -> Response:
    health = queries.endpoint_health(_hookline(request).sessions, viewer.tenant_id, utcnow())
    return page(request, "endpoints.html", viewer=viewer, health=health,
                window_hours=int(queries.HEALTH_WINDOW.total_seconds() // 3600))


@router.post("/endpoints/{endpoint_id}/{action}")
def endpoint_action(request: Request, viewer: ViewerDep, form: FormDep, endpoint_id: IdPath,
                    action: Annotated[str, Path(pattern=r"^(enable|disable|rotate-secret)$")]
                    ) -> Response:
    hookline = _hookline(request)
    try:
        admin.get_endpoint(hookline.sessions, endpoint_id, tenant=viewer.tenant_id)
        if action == "rotate-secret":
            grace = timedelta(seconds=hookline.settings.rotation_grace_seconds)
            rotated = admin.rotate_secret(hookline.sessions, endpoint_id, grace=grace,
                                          tenant=viewer.tenant_id)
            return page(request, "secret.html", viewer=viewer, rotated=rotated)
        admin.set_endpoint_enabled(hookline.sessions, endpoint_id, action == "enable")
    except UnknownEndpoint:
        return not_found(request, viewer)
    return RedirectResponse("/console/endpoints", 303)
