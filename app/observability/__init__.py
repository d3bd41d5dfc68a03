"""Prometheus metrics: what the workers count, what the API measures at scrape time.

* :mod:`app.observability.series` — pure: metric names, label values, how raw counts
  become bounded series (the endpoint cap, partition queues).
* :mod:`app.observability.recorder` — counters and histograms written by the worker
  processes (delivery outcomes, attempt durations, dead letters, sweeper runs), in
  prometheus-client's multiprocess files when ``HOOKLINE_METRICS_DIR`` is set. Never
  raises into the delivery engine.
* :mod:`app.observability.collector` — gauges read from PostgreSQL and Redis when
  ``/metrics`` is scraped (waiting deliveries per queue, oldest undelivered, dead
  letters, success ratio per endpoint).
* :mod:`app.observability.exposition` — the registry ``hookline api`` serves.

See docs/metrics.md.
"""

from app.observability.recorder import enable_multiprocess, observe_outcomes, observe_sweep

__all__ = ["enable_multiprocess", "observe_outcomes", "observe_sweep"]
