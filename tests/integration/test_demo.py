"""``hookline demo``: crew changes turn into gated, signed deliveries, with real processes.

The demo runs as a user runs it, against this run's PostgreSQL and Redis: its own
worker and producers, its own loopback receivers. It must end with every partner
having received exactly the events addressed to it, all verified, and with each of
the three gates having withheld something.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, Stack

pytestmark = pytest.mark.integration


def test_the_demo_delivers_crew_changes_to_exactly_the_partners_the_gate_lets_through(
        stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--changes", "40", "--rate", "20", "--no-flower",
         "--producers", "2", "--timeout", "90"],
        env={**stack.env, "COLUMNS": "160"}, cwd=ROOT, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "every partner received exactly the events addressed to it" in output
    summary = {line.split(" received ")[0].strip(): line for line in output.splitlines()
               if " addressed (" in line}
    assert sorted(summary) == ["Blue Anchor Lines", "Harbor Crewing", "Northwind Shipping"]
    assert all("all verified" in line for line in summary.values()), summary

    # Only this demo's tenants exist (each test starts with no tenants).
    relayed = stack.sql("SELECT count(*) FROM outbox WHERE state = 'relayed' "
                        "AND tenant_ref IN (SELECT id FROM tenants)")[0][0]
    delivered = stack.sql("SELECT count(*) FROM deliveries WHERE state = 'succeeded'")[0][0]
    assert relayed > 0 and delivered == relayed
    reasons = {reason for (reason,) in stack.sql(
        "SELECT DISTINCT reason FROM cp_withheld WHERE partner_id IN "
        "(SELECT id FROM cp_partners WHERE tenant IN (SELECT id FROM tenants))")}
    assert reasons == {"not_on_fleet", "missing_scope", "no_consent"}
    retried = stack.sql("SELECT count(*) FROM deliveries WHERE attempt_count > 1")[0][0]
    assert retried > 0, "Harbor Crewing's receiver fails each first attempt, so retries must show"
