"""Hookline: self-hosted webhook delivery.

Producers publish through :class:`Hookline`::

    from app import Hookline
    Hookline.from_env().publish("acme", "crew.status.changed", {"crew_id": "c_1"})

The names are imported on first use, so that ``app.verify`` (standard library only)
can be imported by a receiver without loading the rest of Hookline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.client import Hookline
    from app.publishing import PublishResult

__all__ = ["Hookline", "PublishResult"]


def __getattr__(name: str) -> Any:
    if name == "Hookline":
        from app.client import Hookline

        return Hookline
    if name == "PublishResult":
        from app.publishing import PublishResult

        return PublishResult
    raise AttributeError(f"module 'app' has no attribute {name!r}")
