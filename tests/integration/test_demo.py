"""``hookline demo``: crew changes turn into gated, signed deliveries, with real processes.

The demo runs as a user runs it, against this run's PostgreSQL and Redis: its own
worker, producers, Flower and API, its own loopback receivers. It must end with every
partner having received exactly the events addressed to it, all verified, with each
of the three gates having withheld something; and it must have shown what Hookline is
for while it ran: deliveries per second, retries, dead letters, the requeue command
and its output, and the Flower and console URLs before the summary.

One run of the demo serves every assertion (it takes tens of seconds), so the test
is one function with its checks grouped by what they prove.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, Stack

pytestmark = pytest.mark.integration


def test_the_demo_shows_retries_dead_letters_and_the_requeue_and_accounts_for_every_delivery(
        stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--changes", "40", "--rate", "20",
         "--producers", "2", "--timeout", "120"],
        env={**stack.env, "COLUMNS": "200"}, cwd=ROOT, capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    live, _, summary = output.partition("\nSummary\n")
    assert summary, output

    # The gate: every partner got exactly its events, verified; each gate withheld some.
    assert "every partner received exactly the events addressed to it" in summary
    assert "every delivery accounted for" in summary
    partners = {line.split(" received ")[0].strip(): line for line in summary.splitlines()
                if " addressed (" in line}
    assert sorted(partners) == ["Blue Anchor Lines", "Harbor Crewing", "Northwind Shipping"]
    assert all("all verified" in line for line in partners.values()), partners
    reasons = {reason for (reason,) in stack.sql(
        "SELECT DISTINCT reason FROM cp_withheld WHERE partner_id IN "
        "(SELECT id FROM cp_partners WHERE tenant IN (SELECT id FROM tenants))")}
    assert reasons == {"not_on_fleet", "missing_scope", "no_consent"}

    # Flower and the console are shown while they run, before the summary.
    flower = re.search(r"Flower \(live now\): (http://127\.0\.0\.1:\d+)", live)
    console = re.search(r"console \(live now\): (http://127\.0\.0\.1:\d+/console)", live)
    assert flower and console, live
    assert f"was live at {flower.group(1)}" in summary and f"was live at {console.group(1)}" in summary
    counted = re.search(r"Flower: (\d+) delivery tasks processed \(([0-9.]+) tasks/s\) carrying (\d+)", live)
    assert counted and int(counted.group(1)) > 0 and int(counted.group(3)) > 0, live

    # Deliveries per second, live and on average.
    assert re.search(r"[0-9]+\.[0-9] deliveries/s now", live), live
    average = re.search(r"(\d+) delivered in [0-9.]+s: ([0-9.]+) deliveries/s average", summary)
    assert average and float(average.group(2)) > 0, summary

    # Retries: Harbor answers 503, then 429 with Retry-After, then 200.
    retries = re.search(r"(\d+) of them retries: Harbor Crewing (\d+)", summary)
    assert retries and int(retries.group(2)) > 0, summary
    harbor = dict(stack.sql(
        "SELECT a.status_code, count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
        "JOIN tenants t ON t.id = d.tenant_id WHERE t.name LIKE 'harbor-%' GROUP BY a.status_code"))
    assert harbor[503] == harbor[429] == harbor[200] > 0, harbor
    waited = stack.sql(
        "SELECT min(b.started_at - a.started_at) FROM attempts a JOIN attempts b "
        "ON b.delivery_id = a.delivery_id AND b.attempt_number = a.attempt_number + 1 "
        "WHERE a.status_code = 429")[0][0]
    assert waited.total_seconds() >= 1.9, "the 429's Retry-After: 2 wins over the 0.3 s schedule"

    # Dead letters: Blue Anchor's 422s and the retired URL's 410, which disabled its endpoint.
    dead = re.search(r"dead-lettered +(\d+): (.*)", summary)
    assert dead and int(dead.group(1)) > 0 and "permanent_4xx" in dead.group(2), summary
    assert "Blue Anchor Lines" in dead.group(2) and "Northwind Shipping (old URL)" in dead.group(2)
    assert "disabled by 410   Northwind Shipping (old URL)" in summary
    statuses = {status for (status,) in stack.sql("SELECT DISTINCT status_code FROM attempts")}
    assert {410, 422} <= statuses

    # The requeue: the fix, then the operator's commands and their output, before the summary.
    enable = re.search(r"\$ hookline endpoints enable (ep_\w+)\n +endpoint (ep_\w+) enabled", live)
    assert enable and enable.group(1) == enable.group(2), live
    requeued = [int(n) for n in re.findall(
        r"\$ hookline dlq requeue --all --endpoint ep_\w+\n +requeued (\d+) dead letter\(s\)", live)]
    assert len(requeued) == 2 and sum(requeued) == int(dead.group(1)), live
    assert f"{sum(requeued)} of {sum(requeued)} arrived after the requeue" in summary
    again = stack.sql("SELECT state, count(*) FROM deliveries WHERE requeue_count > 0 GROUP BY state")
    assert again == [("succeeded", sum(requeued))], again

    # Everything: each outbox row reached its partner's main webhook, and nothing is left open.
    relayed = stack.sql("SELECT count(*) FROM outbox WHERE state = 'relayed' "
                        "AND tenant_ref IN (SELECT id FROM tenants)")[0][0]
    to_main = stack.sql("SELECT count(*) FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id "
                        "WHERE d.state = 'succeeded' AND e.url LIKE '%/crewpass'")[0][0]
    assert relayed > 0 and to_main == relayed
    assert stack.sql("SELECT count(*) FROM deliveries WHERE state <> 'succeeded'")[0][0] == 0
