"""The 422 answer for a request the schema refuses: FastAPI's shape, always serialisable.

FastAPI's own handler echoes each refused value back (``input``) through the strict
JSON encoder, so the very values worth refusing (a lone surrogate such as ``\\ud800``,
``NaN``, ``Infinity``, a document nested hundreds of levels deep) made the 422 itself
fail to render, and the caller got a 500. Here every error keeps its ``type``, ``loc``
and ``msg``, text is escaped where UTF-8 cannot carry it, and a refused value or
context is echoed only when it renders as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["MESSAGES", "error_view", "utf8_safe", "validation_problem"]

#: Clearer words for refusals whose pydantic message leaves the caller guessing.
MESSAGES = {
    "string_unicode": "Input should be valid Unicode text: a lone surrogate such as \\ud800 "
                      "has no UTF-8 form",
}


async def validation_problem(_request: Request, exc: Exception) -> JSONResponse:
    """``{"detail": [error, …]}`` with status 422, renderable whatever was sent."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": [error_view(error) for error in errors]}, status_code=422)


def error_view(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as the API shows it."""
    kind = str(error.get("type", "value_error"))
    view: dict[str, Any] = {
        "type": kind,
        "loc": [utf8_safe(part) if isinstance(part, str) else part for part in error.get("loc", ())],
        "msg": MESSAGES.get(kind) or utf8_safe(str(error.get("msg", ""))),
    }
    for key in ("input", "ctx"):
        if key in error:
            rendered = _as_json(error[key])
            if rendered is not _UNRENDERABLE:
                view[key] = rendered
    return view


def utf8_safe(text: str) -> str:
    """*text*, with any lone surrogate written as its escape (``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_UNRENDERABLE = object()


def _as_json(value: Any) -> Any:
    """*value* as JSON would carry it, or ``_UNRENDERABLE``: NaN, infinities, lone
    surrogates, or nesting too deep for the encoder."""
    try:
        encoded = jsonable_encoder(value)
        json.dumps(encoded, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        return _UNRENDERABLE
    return encoded
