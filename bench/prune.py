"""Delivery throughput with and without a concurrent prune of 1,000,000 old rows.

Inserts, on a fresh PostgreSQL database, N old events (default 250,000, 10 days old,
succeeded) with four attempts each (1,000,000 attempt rows), then runs deliveries to
the loopback sink twice: alone, and while ``app.pruning.prune`` deletes those
attempts and empties those payloads in its usual batches. Prints both figures side by
side. Not part of the test suite; ``tests/integration/test_pruning.py`` covers the
behaviour at small scale.

    .venv/bin/python bench/prune.py [--old-events 250000] [--deliveries 20000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from app import admin, pruning
from app.client import Hookline
from bench.harness import (
    PG_ADMIN_URL,
    REDIS_URL,
    Group,
    Sink,
    bench_database,
    child_env,
    delete_keys,
    log,
    require_loopback,
    wait_for,
    wait_workers,
)
from config.settings import get_settings

ATTEMPTS_PER_EVENT = 4


def insert_old(hl: Hookline, tenant: str, endpoint: str, events: int) -> None:
    """*events* 10-day-old succeeded deliveries with four attempts each, in one go per table."""
    params = {"tenant": tenant, "endpoint": endpoint, "n": events}
    with hl.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO events (id, tenant_id, event_type, payload, occurred_at, environment, "
            "created_at) SELECT 'evt_00' || lpad(i::text, 10, '0'), :tenant, "
            "'crew.status.changed', jsonb_build_object('crew_id', 'c' || i, 'note', repeat('x', 200)), "
            "t, 'production', t FROM (SELECT i, now() - interval '10 days' + i * interval '1 ms' AS t "
            "FROM generate_series(1, :n) i) s"), params)
        conn.execute(text(
            "INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, state, attempt_count, "
            "next_attempt_at, queued_at, last_status_code, succeeded_at, requeue_count, created_at, "
            "updated_at) SELECT 'dlv_00' || lpad(i::text, 10, '0'), "
            "'evt_00' || lpad(i::text, 10, '0'), :endpoint, :tenant, 'succeeded', 4, t, t, 200, t, "
            "0, t, t FROM (SELECT i, now() - interval '10 days' + i * interval '1 ms' AS t "
            "FROM generate_series(1, :n) i) s"), params)
        conn.execute(text(
            "INSERT INTO attempts (delivery_id, attempt_number, started_at, duration_ms, status_code, "
            "response_excerpt) SELECT 'dlv_00' || lpad(i::text, 10, '0'), k, "
            "now() - interval '10 days' + i * interval '1 ms', 20.0, "
            "CASE WHEN k < 4 THEN 503 ELSE 200 END, repeat('r', 300) "
            "FROM generate_series(1, :n) i, generate_series(1, 4) k"), params)
        conn.execute(text("ANALYZE"))


def deliver(hl: Hookline, tenant: str, count: int, timeout: float) -> float:
    """Publish *count* events (one delivery each) and wait until all succeeded; deliveries/s."""
    with hl.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM deliveries WHERE state = 'succeeded'")
                              ).scalar_one()
    started = time.monotonic()
    for first in range(0, count, 1000):
        items = [{"event_type": "crew.status.changed", "data": {"crew_id": f"c{i}"}}
                 for i in range(first, min(count, first + 1000))]
        hl.publish_many(tenant, items)

    def done() -> bool:
        with hl.engine.connect() as conn:
            now = conn.execute(text("SELECT count(*) FROM deliveries WHERE state = 'succeeded'")
                               ).scalar_one()
        return bool(now - before >= count)

    wait_for(done, timeout, f"{count} deliveries", interval=0.2)
    return count / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--old-events", type=int, default=250_000,
                        help="Old events; each gets four attempts (250,000 → 1,000,000 attempts).")
    parser.add_argument("--deliveries", type=int, default=20_000, help="Deliveries per phase.")
    parser.add_argument("--batch", type=int, default=1000, help="HOOKLINE_PRUNE_BATCH.")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0)
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
            allow_http=True, egress_allow=["127.0.0.1/32"], prune_batch=args.batch)
        hl = Hookline(settings)
        stack.callback(hl.close)
        env = child_env(settings)
        sink = Sink.start(Path(workdir), env)
        stack.callback(sink.group.stop)
        tenant = admin.create_tenant(hl.sessions, "bench").id
        endpoint = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant, url=sink.url("/ok"),
                                      events=["*"], policy=hl.egress_policy).endpoint.id
        began = time.monotonic()
        insert_old(hl, tenant, endpoint, args.old_events)
        log(f"inserted {args.old_events} old events and {args.old_events * ATTEMPTS_PER_EVENT} "
            f"old attempts in {time.monotonic() - began:.1f} s")
        worker = Group("worker", [sys.executable, "-m", "app.cli", "worker", "--hostname=prune@%h"],
                       env, Path(workdir) / "worker.log")
        stack.callback(worker.stop)
        wait_workers(hl.sender, [worker], 60)
        deliver(hl, tenant, 1000, args.timeout)  # warm-up: connections, caches

        alone = deliver(hl, tenant, args.deliveries, args.timeout)
        log(f"without a prune: {alone:.0f} deliveries/s")

        result: dict[str, float] = {}

        def run_prune() -> None:
            started = time.monotonic()
            report = pruning.prune(hl.engine, default_days=7, batch=args.batch)
            result.update(seconds=time.monotonic() - started, attempts=report.attempts,
                          events=report.events, batches=report.batches)

        pruner = threading.Thread(target=run_prune, name="prune")
        pruner.start()
        delivery_started = time.monotonic()
        during = deliver(hl, tenant, args.deliveries, args.timeout)
        delivery_seconds = time.monotonic() - delivery_started
        pruner.join(args.timeout)
        overlap = min(delivery_seconds, result.get("seconds", float("nan")))
        print()
        print(f"| {'deliveries/s alone':>20} | {'deliveries/s during prune':>26} | change | "
              f"prune: attempts deleted | payloads emptied | prune seconds | overlap s |")
        print(f"| {alone:>20.0f} | {during:>26.0f} | {100 * (during / alone - 1):+5.1f}% | "
              f"{int(result.get('attempts', 0)):>23,} | {int(result.get('events', 0)):>16,} | "
              f"{result.get('seconds', float('nan')):>13.1f} | {overlap:>9.1f} |")


if __name__ == "__main__":
    main()
