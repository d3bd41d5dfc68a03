"""What ``/metrics`` serves: the workers' counters and the scrape-time gauges, as text.

With ``HOOKLINE_METRICS_DIR`` set, the workers' values are the sum of every process's
files in it (prometheus-client's multiprocess collector); without it, only this
process's own counters, which in ``hookline api`` stay at zero. The gauges come from
:class:`~app.observability.collector.StateCollector`. Access is checked with
:func:`token_matches` when ``HOOKLINE_METRICS_TOKEN`` is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.client import Hookline
from app.observability.collector import StateCollector
from app.observability.recorder import recorder

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _ThisProcess(Collector):
    """This process's recorder, read when scraped (it is built on first use)."""

    def collect(self) -> Iterable[Metric]:
        return recorder().registry.collect()


def registry_for(hookline: Hookline) -> CollectorRegistry:
    """The registry one scrape reads: workers' counters plus the fleet's state."""
    settings = hookline.settings
    registry = CollectorRegistry(auto_describe=False)
    if settings.metrics_dir is not None:
        settings.metrics_dir.mkdir(parents=True, exist_ok=True)
        MultiProcessCollector(registry, path=str(settings.metrics_dir.resolve()))
    else:
        registry.register(_ThisProcess())
    registry.register(StateCollector(settings, lambda: hookline.engine,
                                     lambda: hookline.broker))
    return registry


def scrape(hookline: Hookline) -> bytes:
    """The Prometheus text exposition of every series, measured now."""
    return generate_latest(registry_for(hookline))


def token_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries the metrics *token* (always, if none is set)."""
    if token is None:
        return True
    if authorization is None:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


__all__ = ["CONTENT_TYPE", "registry_for", "scrape", "token_matches"]
