"""What a rate limit costs, and the rate it achieves.

Runs the delivery engine in this process (no Celery: batches of due deliveries are
read from SQL and handed to ``DeliveryEngine.run``, as a worker's task would) against
a loopback receiver, on the real PostgreSQL and Redis of this machine, and prints:

* one acquire's round trip to Redis (the Lua script), alone;
* deliveries per second to an endpoint without a limit, and to one whose limit is
  far above what is sent (the cost of asking: one acquire per batch);
* the achieved rate of endpoints limited below what could be sent.

    .venv/bin/python bench/ratelimit.py [--events 2000] [--limited-seconds 5]

Every Redis key it writes is under ``hookline-bench-rl-<hex>:``, deleted when done; the
database is a fresh ``hookline_bench_<hex>``, dropped when done.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import admin  # noqa: E402
from app.client import Hookline  # noqa: E402
from app.engine.limiter import RedisBuckets  # noqa: E402
from app.engine.ratelimit import RateLimit  # noqa: E402
from app.models import utcnow  # noqa: E402
from app.receiver import Receiver  # noqa: E402
from bench.harness import PG_ADMIN_URL, REDIS_URL, bench_database, delete_keys, log  # noqa: E402
from config.settings import get_settings  # noqa: E402

BATCH = 100
DUE = text("SELECT id FROM deliveries WHERE endpoint_id = :e AND state IN "
           "('pending', 'retry_scheduled') AND next_attempt_at <= :now "
           "ORDER BY next_attempt_at LIMIT :n")
DONE = text("SELECT count(*) FROM deliveries WHERE endpoint_id = :e AND state = 'succeeded'")


def acquire_round_trip(prefix: str, calls: int) -> float:
    """Median microseconds of one acquire against Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    buckets = RedisBuckets(client, prefix)
    limit = RateLimit(per_second=1e4, burst=100_000)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        buckets.acquire("ep_bench", limit, BATCH, 1.0)
        times.append(time.perf_counter() - started)
    client.close()
    return statistics.median(times) * 1e6


def drive(hl: Hookline, endpoint_id: str, total: int, max_seconds: float) -> tuple[int, float]:
    """Deliver the endpoint's due deliveries batch by batch; (succeeded, seconds) from the
    first batch until all succeeded or *max_seconds* passed."""
    started = time.monotonic()
    while time.monotonic() - started < max_seconds:
        with hl.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(DUE, {"e": endpoint_id, "now": utcnow(), "n": BATCH})]
            done = int(conn.execute(DONE, {"e": endpoint_id}).scalar_one())
        if done >= total:
            break
        if not ids:
            time.sleep(0.005)
            continue
        hl.deliveries.run(ids)
    elapsed = time.monotonic() - started
    with hl.engine.connect() as conn:
        return int(conn.execute(DONE, {"e": endpoint_id}).scalar_one()), elapsed


def endpoint(hl: Hookline, receiver: Receiver, name: str, event: str,
             per_second: float | None = None, burst: int | None = None) -> str:
    receiver.route(f"/{name}")
    return admin.add_endpoint(hl.sessions, hl.catalogue, tenant="bench",
                              url=receiver.url(f"/{name}"), events=[event],
                              policy=hl.egress_policy, rate_limit_per_second=per_second,
                              rate_limit_burst=burst).endpoint.id


def publish(hl: Hookline, event: str, count: int) -> None:
    for start in range(0, count, 1000):
        hl.publish_many("bench", [{"event_type": event, "data": {"crew_id": f"c{i}"}}
                                  for i in range(start, min(start + 1000, count))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000,
                        help="deliveries per throughput run (unlimited, limited far above)")
    parser.add_argument("--limited-seconds", type=float, default=5.0,
                        help="seconds of backlog each limited run is given")
    parser.add_argument("--rates", default="20,50,100",
                        help="comma list of limits (per second) whose achieved rate is measured")
    args = parser.parse_args()
    prefix = f"hookline-bench-rl-{uuid.uuid4().hex[:8]}:"
    receiver = Receiver().start()
    try:
        with tempfile.TemporaryDirectory(prefix="hookline-bench-rl-") as tmp, \
                bench_database(PG_ADMIN_URL) as pg:
            settings = get_settings(database_url=pg, broker_url=REDIS_URL,
                                    broker_key_prefix=prefix, data_dir=Path(tmp),
                                    log_level="WARNING", allow_http=True,
                                    egress_allow=["127.0.0.1/32"])
            hl = Hookline(settings)
            try:
                admin.create_tenant(hl.sessions, "bench")
                print(f"acquire round trip (Lua, median of 2000): "
                      f"{acquire_round_trip(prefix, 2000):.0f} us per batch")
                runs = [("warm-up", None, None, "crew.document.updated"),
                        ("no limit", None, None, "crew.document.processed"),
                        ("limit 10000/s (never reached)", 10_000.0, 100_000,
                         "crew.status.changed")]
                print(f"{'endpoint':34} {'deliveries':>10} {'seconds':>8} {'per second':>11}")
                for label, per_second, burst, event in runs:
                    ep = endpoint(hl, receiver, label.split()[0], event, per_second, burst)
                    publish(hl, event, args.events)
                    done, seconds = drive(hl, ep, args.events, 120.0)
                    if label != "warm-up":
                        print(f"{label:34} {done:>10} {seconds:>8.2f} {done / seconds:>11.1f}")
                for rate in (float(r) for r in args.rates.split(",")):
                    events = int(rate * args.limited_seconds)
                    ep = endpoint(hl, receiver, f"limited{rate:g}", "crew.profile.updated",
                                  rate, 1)
                    publish(hl, "crew.profile.updated", events)
                    done, seconds = drive(hl, ep, events, args.limited_seconds * 3 + 10)
                    print(f"{f'limit {rate:g}/s, burst 1':34} {done:>10} {seconds:>8.2f} "
                          f"{done / seconds:>11.1f}")
                    admin.delete_endpoint(hl.sessions, ep)
            finally:
                hl.close()
    finally:
        receiver.stop()
        log(f"deleted {delete_keys(REDIS_URL, [prefix])} Redis keys")


if __name__ == "__main__":
    main()
