"""Posted forms: the body read as ``application/x-www-form-urlencoded`` and its CSRF token checked.

The console's forms are plain HTML forms, so the standard library parses them (no
multipart support is needed). Every POST route depends on :data:`FormDep`: a body
without this session's token is refused with 403 before the route runs.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request

from app.console.auth import COOKIE_NAME, CSRF_FIELD, Sessions, csrf_ok

#: More fields than any console form has; a body with more is not one of ours.
MAX_FIELDS = 200


class Form:
    """The fields of one posted form: the first value of a name, or all of them."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0].strip() if values else default

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self._fields.get(name, [])]


async def posted_form(request: Request) -> Form:
    """The request's form, if it carries the session's CSRF token; 403 otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the console accepts only form posts")
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "malformed form") from None
    sessions: Sessions = request.app.state.console_sessions
    state = sessions.load(request.cookies.get(COOKIE_NAME))
    submitted = fields.get(CSRF_FIELD, [""])[0]
    if not csrf_ok(state, submitted):
        raise HTTPException(403, "the form's security token is missing or out of date: "
                                 "reload the page and try again")
    return Form(fields)


FormDep = Annotated[Form, Depends(posted_form)]
