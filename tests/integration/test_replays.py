"""Replays by time window on real PostgreSQL and Redis: once per replay id, resumable,
50,000 deliveries in bounded time, pruned events reported, bad input refused."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
from typer.testing import CliRunner

from app import admin, replays
from app.cli import cli
from app.models import utcnow
from app.names import DELIVER_TASK, partition_queue
from app.receiver import Receiver, Route
from tests.integration.api_callers import Caller
from tests.integration.bulk_rows import insert_delivered
from tests.integration.conftest import REDIS_URL, Stack
from tests.support import crewpass_signature_ok, wait_until

pytestmark = pytest.mark.integration


def endpoint_for(stack: Stack, tenant: str, receiver: Receiver | None = None,
                 path: str = "/hooks") -> str:
    url = receiver.url(path) if receiver is not None else f"http://127.0.0.1:9{path}"
    created = admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue, tenant=tenant,
                                 url=url, events=["*"], policy=stack.hookline.egress_policy)
    if receiver is not None:
        secret = created.secret
        route = Route()
        route.verify = lambda headers, body: crewpass_signature_ok(secret, headers, body)
        receiver.route(path, route)
    return created.endpoint.id


def queued_delivery_ids(stack: Stack) -> list[str]:
    """Every delivery id in the deliver messages waiting on the partition queues."""
    client = redis.Redis.from_url(REDIS_URL)
    ids: list[str] = []
    try:
        for partition in range(stack.settings.partitions):
            key = stack.settings.broker_key_prefix + partition_queue(partition)
            raws: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]
            for raw in raws:
                message = json.loads(raw)
                if message["headers"]["task"] != DELIVER_TASK:
                    continue
                args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                ids.extend(args[0])
    finally:
        client.close()
    return ids


def flat(output: str) -> str:
    """Command output with rich's line wrapping undone."""
    return " ".join(output.split())


def states(stack: Stack, tenant_id: str) -> Counter[str]:
    return Counter({state: n for state, n in stack.sql(
        "SELECT state, count(*) FROM deliveries WHERE tenant_id = :t GROUP BY state", t=tenant_id)})


class TestEndToEnd:
    """Through the API and a real worker, a replay sends each delivery of its window again, once."""

    def test_a_replay_resends_every_delivery_of_the_window_once(
            self, stack: Stack, acme: Caller, receiver: Receiver) -> None:
        endpoint = endpoint_for(stack, acme.tenant, receiver)
        stack.worker()
        events = [stack.hookline.publish(acme.tenant, "crew.status.changed", {"crew_id": f"c{i}"})
                  for i in range(3)]
        wait_until(lambda: states(stack, acme.tenant) == Counter(succeeded=3), what="3 deliveries")
        since = (utcnow() - timedelta(hours=1)).isoformat()

        answer = acme.call("POST", "/replays", json={"since": since, "endpointId": endpoint,
                                                     "state": "succeeded"})
        assert answer.status_code == 202, answer.text
        replay_id = answer.json()["id"]

        def finished() -> bool:
            return bool(acme.call("GET", f"/replays/{replay_id}").json()["status"] == "completed")

        wait_until(finished, what="the replay to complete")
        counts = acme.call("GET", f"/replays/{replay_id}").json()["counts"]
        assert counts == {"matched": 3, "sent": 3, "pruned": 0, "skippedDisabled": 0,
                          "skippedActive": 0}
        wait_until(lambda: len(receiver.for_path("/hooks")) == 6, what="3 replayed deliveries")
        wait_until(lambda: states(stack, acme.tenant) == Counter(succeeded=3), what="recorded")
        assert Counter(r.event_id for r in receiver.for_path("/hooks")) == {
            e.event_id: 2 for e in events}
        assert all(r.verified for r in receiver.for_path("/hooks"))

        # Run again under the same id (a redelivered task): nothing more is sent.
        again = replays.run_replay(stack.hookline.sessions, stack.hookline.dispatcher, replay_id,
                                   batch=10)
        assert again.counts.sent == 3
        time.sleep(1.5)
        assert len(receiver.for_path("/hooks")) == 6


class TestAtScale:
    """50,000 deliveries: bounded batches, a stop half-way, a resume, each sent exactly once."""

    def test_fifty_thousand_deliveries_are_replayed_once_each_across_a_stop_and_resume(
            self, stack: Stack) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        endpoints = [endpoint_for(stack, tenant, path="/a"), endpoint_for(stack, tenant, path="/b")]
        start = utcnow() - timedelta(hours=2)
        total = insert_delivered(stack.hookline.engine, tenant_id=tenant, endpoint_ids=endpoints,
                                 events=25_000, start=start, step_ms=100)
        assert total == 50_000
        sessions, dispatcher = stack.hookline.sessions, stack.hookline.dispatcher
        began = time.monotonic()
        replay = replays.create_replay(sessions, replays.ReplayRequest(
            tenant=tenant, since=start, state="succeeded"), default_retention_days=30)

        # A runner that stops after 20 batches (as a killed one would, between commits)…
        stopped = replays.run_replay(sessions, dispatcher, replay.id, batch=1000, max_batches=20)
        assert (stopped.status, stopped.counts.sent) == ("running", 20_000)
        assert replays.remaining(sessions, replay.id) == 30_000
        # …and the next one resumes at the cursor.
        done = replays.run_replay(sessions, dispatcher, replay.id, batch=1000)
        elapsed = time.monotonic() - began

        assert done.status == "completed"
        assert (done.counts.matched, done.counts.sent) == (50_000, 50_000)
        assert states(stack, tenant) == Counter(pending=50_000)
        sent = queued_delivery_ids(stack)
        assert len(sent) == 50_000 and len(set(sent)) == 50_000
        assert stack.sql("SELECT count(DISTINCT source_delivery_id) FROM replay_items "
                         "WHERE replay_id = :r", r=replay.id) == [(50_000,)]
        assert replays.run_replay(sessions, dispatcher, replay.id, batch=1000).counts.sent == 50_000
        assert len(queued_delivery_ids(stack)) == 50_000
        print(f"\n50,000 deliveries replayed in {elapsed:.1f} s")
        assert elapsed < 60, f"replaying 50,000 deliveries took {elapsed:.1f} s"


class TestWhatIsNotSent:
    """Pruned events, disabled endpoints and deliveries under way are counted, not sent."""

    def test_pruned_disabled_and_active_deliveries_are_reported(self, stack: Stack) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        live, disabled = endpoint_for(stack, tenant, path="/a"), endpoint_for(stack, tenant, path="/b")
        start = utcnow() - timedelta(hours=1)
        insert_delivered(stack.hookline.engine, tenant_id=tenant, endpoint_ids=[live, disabled],
                         events=10, start=start, step_ms=1000, state="dead")
        admin.set_endpoint_enabled(stack.hookline.sessions, disabled, False)
        stack.execute("UPDATE events SET payload = NULL, pruned_at = now() WHERE id IN "
                      "('evt_b0000000001', 'evt_b0000000002')")
        stack.execute("UPDATE deliveries SET state = 'retry_scheduled' WHERE id = 'dlv_b00000000003'")
        sessions = stack.hookline.sessions
        request = replays.ReplayRequest(tenant=tenant, since=start, state="any")

        preview = replays.preview(sessions, request, default_retention_days=30)
        replay = replays.create_replay(sessions, request, default_retention_days=30)
        done = replays.run_replay(sessions, stack.hookline.dispatcher, replay.id, batch=3)

        expected = replays.ReplayCounts(matched=20, sent=7, pruned=4, skipped_disabled=8,
                                        skipped_active=1)
        assert (preview, done.counts) == (expected, expected)
        assert sorted(queued_delivery_ids(stack)) == [f"dlv_b0{i:010d}" for i in range(4, 11)]
        assert stack.sql("SELECT outcome, count(*) FROM replay_items GROUP BY outcome "
                         "ORDER BY outcome") == [("pruned", 4), ("sent", 7),
                                                 ("skipped_active", 1), ("skipped_disabled", 8)]

    def test_a_cancelled_replay_sends_nothing_more(self, stack: Stack) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        endpoint = endpoint_for(stack, tenant)
        start = utcnow() - timedelta(hours=1)
        insert_delivered(stack.hookline.engine, tenant_id=tenant, endpoint_ids=[endpoint],
                         events=30, start=start, step_ms=1000)
        sessions = stack.hookline.sessions
        replay = replays.create_replay(sessions, replays.ReplayRequest(tenant=tenant, since=start),
                                       default_retention_days=30)
        replays.run_replay(sessions, stack.hookline.dispatcher, replay.id, batch=10, max_batches=1)
        assert replays.cancel_replay(sessions, replay.id).status == "cancelled"
        after = replays.run_replay(sessions, stack.hookline.dispatcher, replay.id, batch=10)
        assert (after.status, after.counts.sent) == ("cancelled", 10)
        assert len(queued_delivery_ids(stack)) == 10


class TestBadInput:
    """A bad window is a clear 422; another tenant's replay or endpoint is a 404."""

    def test_since_after_until_is_422(self, acme: Caller) -> None:
        now = utcnow()
        answer = acme.call("POST", "/replays", json={
            "since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()})
        assert answer.status_code == 422
        assert "must be before until" in answer.json()["detail"]

    def test_a_window_wider_than_retention_is_422(self, acme: Caller) -> None:
        acme.call("PUT", "/retention", json={"days": 7})
        answer = acme.call("POST", "/replays", json={
            "since": (utcnow() - timedelta(days=8)).isoformat()})
        assert answer.status_code == 422
        assert "before the retention horizon of 7 days" in answer.json()["detail"]

    def test_another_tenant_s_replay_and_endpoint_are_404(
            self, stack: Stack, acme: Caller, globex: Caller) -> None:
        theirs = replays.create_replay(stack.hookline.sessions, replays.ReplayRequest(
            tenant=globex.tenant, since=utcnow() - timedelta(hours=1)), default_retention_days=30)
        their_endpoint = endpoint_for(stack, globex.tenant)
        assert acme.call("GET", f"/replays/{theirs.id}").status_code == 404
        assert acme.call("POST", f"/replays/{theirs.id}/cancel").status_code == 404
        assert acme.call("DELETE", f"/replays/{theirs.id}").status_code == 404
        answer = acme.call("POST", "/replays", json={
            "since": (utcnow() - timedelta(hours=1)).isoformat(), "endpointId": their_endpoint})
        assert answer.status_code == 404
        assert replays.get_replay(stack.hookline.sessions, theirs.id).status == "running"

    def test_a_dry_run_counts_and_creates_nothing(self, stack: Stack, acme: Caller) -> None:
        endpoint = endpoint_for(stack, acme.tenant)
        start = utcnow() - timedelta(hours=1)
        insert_delivered(stack.hookline.engine, tenant_id=acme.tenant, endpoint_ids=[endpoint],
                         events=5, start=start, step_ms=1000)
        answer = acme.call("POST", "/replays", json={"since": start.isoformat(), "dryRun": True})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["counts"]["sent"]) == ("dry_run", 5)
        assert stack.sql("SELECT count(*) FROM replays") == [(0,)]
        assert states(stack, acme.tenant) == Counter(succeeded=5)


class TestCommand:
    """``hookline replay`` shows a final count, refuses a bad window with exit 2."""

    @pytest.fixture
    def runner(self, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
        for key, value in stack.env.items():
            if key.startswith("HOOKLINE_"):
                monkeypatch.setenv(key, value)
        return CliRunner()

    def test_replay_prints_the_final_count_and_twice_resends_nothing_new(
            self, stack: Stack, runner: CliRunner) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        endpoint = endpoint_for(stack, tenant)
        insert_delivered(stack.hookline.engine, tenant_id=tenant, endpoint_ids=[endpoint],
                         events=250, start=utcnow() - timedelta(minutes=50), step_ms=100)
        dry = runner.invoke(cli, ["replay", "--tenant", "acme", "--since", "1h", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would send 250 of 250 matched" in flat(dry.output)
        result = runner.invoke(cli, ["replay", "--tenant", "acme", "--since", "1h",
                                     "--state", "succeeded"])
        assert result.exit_code == 0, result.output
        assert "completed; sent 250 of 250 matched; pruned/skipped 0" in flat(result.output)
        replay_id = stack.sql("SELECT id FROM replays")[0][0]
        resumed = runner.invoke(cli, ["replay", "--resume", replay_id])
        assert resumed.exit_code == 0 and "sent 250 of 250" in flat(resumed.output)
        assert len(queued_delivery_ids(stack)) == 250

    @pytest.mark.parametrize(("args", "message"), [
        (["--since", "1h", "--until", "2h"], "must be before until"),
        (["--since", "40d"], "before the retention horizon of 30 days"),
        (["--since", "1h", "--state", "pending"], "unknown state 'pending'"),
        (["--since", "yesterday"], "--since 'yesterday': use a duration"),
    ], ids=["since-after-until", "wider-than-retention", "unknown-state", "bad-time"])
    def test_bad_input_exits_2_with_one_clear_line(self, stack: Stack, runner: CliRunner,
                                                    args: list[str], message: str) -> None:
        admin.create_tenant(stack.hookline.sessions, "acme")
        result = runner.invoke(cli, ["replay", "--tenant", "acme", *args])
        assert result.exit_code == 2, result.output
        assert message in flat(result.output)
        assert stack.sql("SELECT count(*) FROM replays") == [(0,)]


