"""Per-endpoint rate limits on real PostgreSQL, Redis and worker processes: the fleet's
bucket holds two workers to the limit, an unlimited endpoint beside it is not slowed,
and the API and CLI set, show and refuse limits."""

from __future__ import annotations

import time

import pytest
import redis
from typer.testing import CliRunner

from app import admin
from app import cli as cli_module
from app.cli import cli
from app.engine.limiter import RedisBuckets
from app.engine.ratelimit import BUCKET_TTL_SECONDS, RateLimit
from app.receiver import Receiver
from tests.integration.api_callers import Caller
from tests.integration.conftest import REDIS_URL, Stack
from tests.support import wait_until

pytestmark = pytest.mark.integration

#: The measured window: long enough that the burst is a small part of what arrives.
WINDOW_SECONDS = 10.0


def add(stack: Stack, receiver: Receiver, path: str, event: str, **options: object) -> str:
    if not stack.sql("SELECT id FROM tenants WHERE name = 'acme'"):
        admin.create_tenant(stack.hookline.sessions, "acme")
    receiver.route(path)
    created = admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue,
                                 tenant="acme", url=receiver.url(path), events=[event],
                                 policy=stack.hookline.egress_policy, **options)  # type: ignore[arg-type]
    return created.endpoint.id


class TestAcrossTheFleet:
    """Two workers share one bucket per endpoint; other endpoints go at full speed."""

    def test_two_workers_keep_a_limited_endpoint_at_its_rate_and_leave_others_alone(
        self, stack: Stack, receiver: Receiver
    ) -> None:
        limited = add(stack, receiver, "/limited", "crew.document.processed",
                      rate_limit_per_second=20, rate_limit_burst=5)
        free = add(stack, receiver, "/free", "crew.status.changed")
        stack.worker(name="a")
        stack.worker(name="b")
        items = []
        for i in range(300):  # 15 s of work at 20/s: still busy when the window ends
            items.append({"event_type": "crew.document.processed", "data": {"crew_id": f"c{i}"}})
            if i % 2:
                items.append({"event_type": "crew.status.changed",
                              "data": {"crew_id": f"c{i}", "status": "active"}})
        stack.hookline.publish_many("acme", items)

        wait_until(lambda: receiver.for_path("/limited"), timeout=20, what="a first delivery")
        first = min(r.at for r in receiver.for_path("/limited"))
        time.sleep(max(first + WINDOW_SECONDS + 0.5 - time.time(), 0.0))

        limited_at = sorted(r.at for r in receiver.for_path("/limited"))
        in_window = [t for t in limited_at if t < first + WINDOW_SECONDS]
        rate = len(in_window) / WINDOW_SECONDS
        per_second = [sum(1 for t in in_window if first + s <= t < first + s + 1)
                      for s in range(int(WINDOW_SECONDS))]
        assert 18.0 <= rate <= 22.0, f"{rate:.1f}/s for a limit of 20/s: {per_second}"
        assert len(limited_at) < 300  # the backlog was still being held back
        assert max(per_second) <= 20 + 5 + 3, per_second  # no second far beyond the rate

        free_at = sorted(r.at for r in receiver.for_path("/free"))
        assert len(free_at) == 150
        assert free_at[-1] - free_at[0] < 3.0, "the unlimited endpoint was slowed down"

        # waiting for a token is not an attempt: every delivery sent went on its first
        counts = stack.sql("SELECT DISTINCT attempt_count FROM deliveries "
                           "WHERE endpoint_id = :e AND state = 'succeeded'", e=limited)
        assert [tuple(r) for r in counts] == [(1,)]
        statuses = stack.sql("SELECT DISTINCT a.status_code FROM attempts a JOIN deliveries d "
                             "ON d.id = a.delivery_id WHERE d.endpoint_id = :e", e=limited)
        assert [tuple(r) for r in statuses] == [(200,)]
        assert stack.sql("SELECT count(*) FROM deliveries WHERE endpoint_id = :e "
                         "AND state = 'succeeded'", e=free)[0][0] == 150


class TestBucketsInRedis:
    """The Lua scripts keep the bucket under the broker key prefix and adapt it."""

    def test_a_bucket_lives_under_the_prefix_and_a_429_halves_its_rate(
        self, redis_prefix: str
    ) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        buckets = RedisBuckets(client, redis_prefix)
        limit = RateLimit(per_second=4.0, burst=3)
        try:
            grant = buckets.acquire("ep_x", limit, want=5, max_wait=0.0)
            assert (grant.granted, grant.rate, grant.factor) == (3, 4.0, 1.0)
            key = f"{redis_prefix}hookline:ratelimit:ep_x"
            ttl = client.ttl(key)
            assert isinstance(ttl, int) and 0 < ttl <= BUCKET_TTL_SECONDS

            assert buckets.feedback("ep_x", limit, 0, True, 1.0) == 0.5
            grant = buckets.acquire("ep_x", limit, want=1, max_wait=0.0)
            assert (grant.granted, grant.rate) == (0, 2.0)
            assert 1.0 < grant.wait(0) <= 1.5  # held a second, then a token at 2/s

            assert buckets.feedback("ep_x", limit, 10, False, None) == pytest.approx(0.7)
        finally:
            client.delete(f"{redis_prefix}hookline:ratelimit:ep_x")
            client.close()


class TestApiAndCli:
    """A webhook's rateLimit is set, shown, changed and removed; bad values are a 422."""

    def test_rate_limit_on_create_read_update_and_removal(self, acme: Caller) -> None:
        created = acme.call("POST", "/webhooks", json={
            "endpoint": "http://127.0.0.1:9/hooks", "events": ["*"],
            "rateLimit": {"perSecond": 20, "burst": 40}})
        assert created.status_code == 201, created.text
        webhook_id = created.json()["id"]
        assert created.json()["rateLimit"] == {"perSecond": 20.0, "burst": 40}
        assert acme.call("GET", f"/webhooks/{webhook_id}").json()["rateLimit"] == {
            "perSecond": 20.0, "burst": 40}

        patched = acme.call("PATCH", f"/webhooks/{webhook_id}",
                            json={"rateLimit": {"perSecond": 2.5}})
        assert patched.json()["rateLimit"] == {"perSecond": 2.5, "burst": 3}
        removed = acme.call("PATCH", f"/webhooks/{webhook_id}", json={"rateLimit": None})
        assert removed.json()["rateLimit"] is None
        plain = acme.call("POST", "/webhooks", json={"endpoint": "http://127.0.0.1:9/b",
                                                     "events": ["*"]})
        assert plain.json()["rateLimit"] is None

    @pytest.mark.parametrize(("rate_limit", "named"), [
        ({"perSecond": 0}, "between 0.01 and 10000"),
        ({"perSecond": -5}, "between 0.01 and 10000"),
        ({"perSecond": 1e9}, "between 0.01 and 10000"),
        ({"perSecond": 5, "burst": 0}, "between 1 and 100000"),
        ({"perSecond": 5, "burst": 10_000_000}, "between 1 and 100000"),
    ])
    def test_out_of_bounds_values_are_a_422_naming_the_bounds(
        self, acme: Caller, rate_limit: dict[str, float], named: str
    ) -> None:
        created = acme.call("POST", "/webhooks", json={
            "endpoint": "http://127.0.0.1:9/hooks", "events": ["*"], "rateLimit": rate_limit})
        assert created.status_code == 422
        assert named in created.text
        plain = acme.call("POST", "/webhooks", json={"endpoint": "http://127.0.0.1:9/hooks",
                                                     "events": ["*"]}).json()["id"]
        patched = acme.call("PATCH", f"/webhooks/{plain}", json={"rateLimit": rate_limit})
        assert patched.status_code == 422
        assert named in patched.text

    def test_the_cli_sets_shows_and_removes_a_rate_limit(self, stack: Stack,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in stack.env.items():
            if name.startswith("HOOKLINE_"):
                monkeypatch.setenv(name, value)
        monkeypatch.setattr(cli_module.out, "width", 300)  # the whole table on one line a row
        admin.create_tenant(stack.hookline.sessions, "acme")
        runner = CliRunner()
        added = runner.invoke(cli, ["endpoints", "add", "http://127.0.0.1:9/x", "--tenant", "acme",
                                    "--events", "*", "--rate-limit", "20", "--burst", "5"])
        assert added.exit_code == 0, added.output
        endpoint_id = added.output.split()[1]
        listed = runner.invoke(cli, ["endpoints", "list", "--tenant", "acme"])
        assert "20/s burst 5" in listed.output

        refused = runner.invoke(cli, ["endpoints", "update", endpoint_id, "--rate-limit", "0"])
        assert refused.exit_code != 0 and "between 0.01 and 10000" in refused.output
        removed = runner.invoke(cli, ["endpoints", "update", endpoint_id, "--no-rate-limit"])
        assert removed.exit_code == 0, removed.output
        assert "rate limit none" in removed.output
        assert stack.sql("SELECT rate_limit_per_second FROM endpoints WHERE id = :e",
                         e=endpoint_id)[0][0] is None
