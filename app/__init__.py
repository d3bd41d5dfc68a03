"""Hookline: self-hosted webhook delivery.

Producers publish through :class:`Hookline`::

    from app import Hookline
    Hookline.from_env().publish("acme", "crew.status.changed", {"crew_id": "c_1"})
"""

from app.client import Hookline
from app.publishing import PublishResult

__all__ = ["Hookline", "PublishResult"]
