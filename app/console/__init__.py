"""The operator web console, served by ``hookline api`` at ``/console``.

Server-rendered pages over the same functions the JSON API uses. The package reads
as its steps: :mod:`~app.console.auth` (who is looking: key login, signed session,
CSRF token), :mod:`~app.console.forms` (posted forms, CSRF check),
:mod:`~app.console.filters` (query strings → filters, inline errors),
:mod:`~app.console.queries` (the reads), :mod:`~app.console.headers` (a request's
headers without its secrets) and :mod:`~app.console.views` (the routes), with
``templates/`` and ``static/``. See docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, StrictUndefined

from app.client import Hookline
from app.console import views
from app.console.auth import Sessions

STATIC_DIR = Path(__file__).parent / "static"


def templates() -> Environment:
    """The console's templates; autoescaping is on for every one of them."""
    env = Environment(loader=PackageLoader("app.console", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = lambda moment: "" if moment is None else moment.strftime(
        "%Y-%m-%d %H:%M:%S")
    return env


def install(api: FastAPI, hookline: Hookline) -> None:
    """Add the console's routes and static files to the API app *api*."""
    api.state.console_sessions = Sessions(hookline.settings, lambda: hookline.sessions)
    api.state.console_templates = templates()
    api.include_router(views.router)
    api.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")


__all__ = ["install", "templates"]
