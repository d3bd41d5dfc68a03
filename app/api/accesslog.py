"""Access logs without credentials: an incoming webhook's token never reaches a log line.

Uvicorn logs every request's path at INFO on ``uvicorn.access``; an incoming webhook's
path is ``/hooks/{token}``, and the token is the hook's only credential.
:class:`RedactTokens` rewrites that path segment to the token's display prefix (the one
lists show) and ``…`` before any handler formats the record; :func:`access_log_config`
is uvicorn's logging config with the filter on that logger. Pure: no I/O.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from app.inbound import DISPLAY_PREFIX_LENGTH, TOKEN_RE

ACCESS_LOGGER = "uvicorn.access"
FILTER_NAME = "redact_tokens"

#: The segment after ``/hooks/`` wherever it appears (a root path, ``//hooks``, any
#: case: a path the routes refuse is logged too), up to the next ``/``, ``?`` or ``#``.
_HOOK_SEGMENT = re.compile(r"(/hooks/)([^/?#\s\"]+)", re.IGNORECASE)


def redact_path(path: str) -> str:
    """*path* with every incoming-webhook token cut to its display prefix and ``…``;
    a segment that is not a well-formed token is cut whole (it may be a mistyped one).
    A path already cut is left as it is, so a record may pass through twice."""

    def cut(match: re.Match[str]) -> str:
        segment = match.group(2)
        if segment.endswith("…") and len(segment) <= DISPLAY_PREFIX_LENGTH + 1:
            return match.group(0)
        shown = segment[:DISPLAY_PREFIX_LENGTH] if TOKEN_RE.fullmatch(segment) else ""
        return f"{match.group(1)}{shown}…"

    return _HOOK_SEGMENT.sub(cut, path)


class RedactTokens(logging.Filter):
    """Rewrites a record's message and string arguments through :func:`redact_path`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True


def access_log_config() -> dict[str, Any]:
    """Uvicorn's default logging config, with :class:`RedactTokens` on ``uvicorn.access``."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})[FILTER_NAME] = {"()": RedactTokens}
    config["loggers"][ACCESS_LOGGER].setdefault("filters", []).append(FILTER_NAME)
    return config


def install(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactTokens` on *logger* (``uvicorn.access``) unless one is there,
    for servers that run the app with a logging config of their own."""
    target = logger or logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactTokens) for f in target.filters):
        target.addFilter(RedactTokens())
