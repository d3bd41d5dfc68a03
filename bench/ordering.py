"""The throughput cost of ordered delivery per key: ordered vs unordered, one run.

On a fresh PostgreSQL database, two endpoints on the loopback sink receive the same
events: one with ``ordering = key``, one without. N events (default 20,000) spread
over K ordering keys (default 200, CrewPass's ``crew_unique_id``) are published in
batches of 1,000; each event becomes one delivery per endpoint, so both compete for
the same worker. Prints each endpoint's deliveries/s (its N deliveries over the time
until its last one succeeded). Not part of the test suite;
``tests/integration/test_ordering.py`` covers the behaviour.

    .venv/bin/python bench/ordering.py [--events 20000] [--keys 200]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from app import admin
from app.client import Hookline
from bench.harness import (
    PG_ADMIN_URL,
    REDIS_URL,
    Group,
    Sink,
    bench_database,
    child_env,
    delete_keys,
    require_loopback,
    wait_for,
    wait_workers,
)
from config.settings import get_settings


def succeeded(hl: Hookline, endpoint: str) -> int:
    with hl.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = :e AND state = 'succeeded'"),
            {"e": endpoint}).scalar_one())


def run(hl: Hookline, tenant: str, endpoints: dict[str, str], events: int, keys: int,
        timeout: float) -> dict[str, float]:
    """Publish *events* over *keys* keys; deliveries/s per endpoint label."""
    before = {label: succeeded(hl, ep) for label, ep in endpoints.items()}
    started = time.monotonic()
    for first in range(0, events, 1000):
        items = [{"event_type": "crew.status.changed",
                  "data": {"crew_unique_id": f"crew-{i % keys}", "n": i}}
                 for i in range(first, min(events, first + 1000))]
        hl.publish_many(tenant, items)
    finished: dict[str, float] = {}

    def done() -> bool:
        for label, endpoint in endpoints.items():
            if label not in finished and succeeded(hl, endpoint) - before[label] >= events:
                finished[label] = time.monotonic() - started
        return len(finished) == len(endpoints)

    wait_for(done, timeout, f"{events} deliveries per endpoint", interval=0.1)
    return {label: events / seconds for label, seconds in finished.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    require_loopback(args.redis_url, "Redis")
    require_loopback(args.pg_admin_url, "PostgreSQL")
    prefix = f"hookline-bench-{uuid.uuid4().hex[:8]}:"
    with ExitStack() as stack, TemporaryDirectory() as workdir:
        pg_url = stack.enter_context(bench_database(args.pg_admin_url))
        stack.callback(delete_keys, args.redis_url, [prefix])
        settings = get_settings(
            database_url=pg_url, broker_url=args.redis_url, broker_key_prefix=prefix,
            data_dir=Path(workdir), log_level="WARNING", worker_concurrency=args.concurrency,
            allow_http=True, egress_allow=["127.0.0.1/32"])
        hl = Hookline(settings)
        stack.callback(hl.close)
        env = child_env(settings)
        sink = Sink.start(Path(workdir), env)
        stack.callback(sink.group.stop)
        tenant = admin.create_tenant(hl.sessions, "bench").id
        endpoints = {
            ordering: admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant,
                                         url=sink.url(f"/{ordering}"), events=["*"],
                                         ordering=ordering, policy=hl.egress_policy).endpoint.id
            for ordering in ("none", "key")}
        worker = Group("worker", [sys.executable, "-m", "app.cli", "worker",
                                  "--hostname=ordering@%h"], env, Path(workdir) / "worker.log")
        stack.callback(worker.stop)
        wait_workers(hl.sender, [worker], 60)
        run(hl, tenant, endpoints, 1000, args.keys, args.timeout)  # warm-up
        rates = run(hl, tenant, endpoints, args.events, args.keys, args.timeout)
        print(f"events {args.events} over {args.keys} keys, worker concurrency {args.concurrency}")
        print(f"unordered: {rates['none']:.0f} deliveries/s")
        print(f"ordered:   {rates['key']:.0f} deliveries/s "
              f"({rates['key'] / rates['none'] * 100:.0f}% of unordered)")


if __name__ == "__main__":
    main()
