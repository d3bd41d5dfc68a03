"""Retention on real PostgreSQL: old payloads and attempts go in small batches, the
delivery rows keep their states, a delivery under way keeps everything, and a pruned
event is reported by a replay instead of sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from app import admin, pruning, replays
from app.cli import cli
from app.models import utcnow
from tests.integration.api_callers import Caller
from tests.integration.bulk_rows import insert_delivered
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def endpoint_for(stack: Stack, tenant: str) -> str:
    return admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue, tenant=tenant,
                              url="http://127.0.0.1:9/hooks", events=["*"],
                              policy=stack.hookline.egress_policy).endpoint.id


def old_and_new(stack: Stack, tenant: str, *, tag: str = "b") -> None:
    """40 deliveries created 10 days ago and 10 created an hour ago, one attempt each; the
    ids sort in time order, as real ones do."""
    endpoint = endpoint_for(stack, tenant)
    insert_delivered(stack.hookline.engine, tenant_id=tenant, endpoint_ids=[endpoint], events=40,
                     start=utcnow() - timedelta(days=10), step_ms=1000, tag=tag + "0")
    insert_delivered(stack.hookline.engine, tenant_id=tenant, endpoint_ids=[endpoint], events=10,
                     start=utcnow() - timedelta(hours=1), step_ms=1000, tag=tag + "1")


def kept(stack: Stack, tenant: str) -> tuple[int, int, int]:
    """(events with a payload, attempts, deliveries still succeeded) of *tenant*."""
    return (
        stack.sql("SELECT count(*) FROM events WHERE tenant_id = :t AND payload IS NOT NULL",
                  t=tenant)[0][0],
        stack.sql("SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                  "WHERE d.tenant_id = :t", t=tenant)[0][0],
        stack.sql("SELECT count(*) FROM deliveries WHERE tenant_id = :t AND state = 'succeeded'",
                  t=tenant)[0][0],
    )


class TestPrune:
    """Payloads and attempts past the horizon go; the deliveries keep their states."""

    def test_old_payloads_and_attempts_go_in_batches_and_the_states_stay(self, stack: Stack) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        old_and_new(stack, tenant)
        report = pruning.prune(stack.hookline.engine, default_days=7, batch=7)
        assert (report.attempts, report.events) == (40, 40)
        assert report.batches > 2 * 40 // 7
        assert kept(stack, tenant) == (10, 10, 50)
        assert stack.sql("SELECT count(*) FROM events WHERE pruned_at IS NOT NULL") == [(40,)]
        again = pruning.prune(stack.hookline.engine, default_days=7, batch=7)
        assert (again.attempts, again.events) == (0, 0)

    def test_a_delivery_under_way_keeps_its_payload_and_attempts(self, stack: Stack) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        old_and_new(stack, tenant)
        stack.execute("UPDATE deliveries SET state = 'retry_scheduled' WHERE id = 'dlv_b000000000001'")
        stack.execute("UPDATE deliveries SET state = 'in_flight' WHERE id = 'dlv_b000000000002'")
        report = pruning.prune(stack.hookline.engine, default_days=7, batch=1000)
        assert (report.attempts, report.events) == (38, 38)
        assert stack.sql("SELECT payload IS NOT NULL, pruned_at IS NULL FROM events WHERE id IN "
                         "('evt_b00000000001', 'evt_b00000000002')") == [(True, True)] * 2
        assert stack.sql("SELECT count(*) FROM attempts WHERE delivery_id IN "
                         "('dlv_b000000000001', 'dlv_b000000000002')") == [(2,)]

    def test_each_tenant_keeps_its_own_retention(self, stack: Stack) -> None:
        short = admin.create_tenant(stack.hookline.sessions, "acme").id
        default = admin.create_tenant(stack.hookline.sessions, "globex").id
        old_and_new(stack, short, tag="s")
        old_and_new(stack, default, tag="d")
        pruning.set_retention(stack.hookline.sessions, "acme", 7)
        report = pruning.prune(stack.hookline.engine, default_days=30, batch=25)
        assert (report.attempts, report.events) == (40, 40)
        assert kept(stack, short) == (10, 10, 50)
        assert kept(stack, default) == (50, 50, 50)

    def test_a_replay_reports_a_pruned_event_instead_of_sending_it(self, stack: Stack) -> None:
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        old_and_new(stack, tenant)
        pruning.set_retention(stack.hookline.sessions, "acme", 7)
        pruning.prune(stack.hookline.engine, default_days=30, batch=100)
        pruning.set_retention(stack.hookline.sessions, "acme", 30)
        sessions = stack.hookline.sessions
        replay = replays.create_replay(sessions, replays.ReplayRequest(
            tenant=tenant, since=utcnow() - timedelta(days=11)), default_retention_days=30)
        done = replays.run_replay(sessions, stack.hookline.dispatcher, replay.id, batch=100)
        assert (done.counts.matched, done.counts.sent, done.counts.pruned) == (50, 10, 40)
        assert stack.sql("SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state") == [
            ("pending", 10), ("succeeded", 40)]


class TestRetentionSettings:
    """A tenant's retention is set through the API and the command, and shown back."""

    def test_the_api_sets_and_clears_a_tenant_s_retention(self, stack: Stack, acme: Caller) -> None:
        default = stack.settings.retention_days
        assert acme.call("GET", "/retention").json() == {"days": default, "override": None,
                                                         "defaultDays": default}
        assert acme.call("PUT", "/retention", json={"days": 7}).json()["days"] == 7
        assert acme.call("PUT", "/retention", json={"days": 0}).status_code == 422
        assert acme.call("PUT", "/retention", json={"days": None}).json()["override"] is None

    def test_the_commands_set_retention_and_prune(self, stack: Stack,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in stack.env.items():
            if key.startswith("HOOKLINE_"):
                monkeypatch.setenv(key, value)
        tenant = admin.create_tenant(stack.hookline.sessions, "acme").id
        old_and_new(stack, tenant)
        runner = CliRunner()
        shown = runner.invoke(cli, ["tenants", "retention", "acme", "--days", "7"])
        assert shown.exit_code == 0 and f"tenant {tenant} keeps 7 days" in shown.output
        bad = runner.invoke(cli, ["tenants", "retention", "acme", "--days", "0"])
        assert bad.exit_code == 2 and "from 1 to 3650" in bad.output
        pruned = runner.invoke(cli, ["prune", "--batch", "10"])
        assert pruned.exit_code == 0, pruned.output
        assert "deleted 40 attempt(s), pruned 40 event payload(s)" in pruned.output
