"""``/metrics`` on a live stack: a real worker writes its counters to the metrics directory,
a real ``hookline api`` process adds them up with the gauges it reads from PostgreSQL and
Redis, and a scrape over HTTP shows every series without a secret or a URL in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app import admin
from app.apikeys import create_api_key
from app.partitioning import queue_for
from app.receiver import Receiver, Route
from tests.integration.conftest import Stack, free_port
from tests.integration.test_api_access_log import ApiProcess
from tests.support import wait_until

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-for-the-test-0123456789"
#: Text in an event's data; a scrape must never show a payload.
PAYLOAD_MARKER = "crw_payload_marker_7731"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of *name* whose labels include *labels* (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def present(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= ls for n, ls in samples)


class TestScrapingTheFleet:
    """Deliveries, a dead letter, a backlog and a lost attempt all show up in one scrape."""

    def test_every_series_has_values_and_the_scrape_shows_no_secret_or_url(
            self, make_stack: Callable[..., Stack], receiver: Receiver, tmp_path: Path) -> None:
        stack = make_stack(metrics_dir=tmp_path / "metrics", metrics_token=TOKEN)
        sessions, catalogue = stack.hookline.sessions, stack.hookline.catalogue
        tenant = admin.create_tenant(sessions, "acme")
        api_key = create_api_key(sessions, tenant.id).key
        receiver.route("/ok")
        receiver.route("/reject", Route(statuses=[400]))
        receiver.route("/down", Route(statuses=[503]))

        def endpoint(path: str, events: list[str], **options: object) -> tuple[str, str]:
            created = admin.add_endpoint(sessions, catalogue, tenant="acme", url=receiver.url(path),
                                         events=events, policy=stack.hookline.egress_policy,
                                         **options)  # type: ignore[arg-type]
            return created.endpoint.id, created.secret

        ok, ok_secret = endpoint("/ok", ["*"])
        reject, reject_secret = endpoint("/reject", ["crew.status.changed"])
        down, down_secret = endpoint("/down", ["crew.status.changed"], max_attempts=30)
        for i in range(3):
            stack.hookline.publish("acme", "crew.status.changed",
                                   {"crew_id": f"{PAYLOAD_MARKER}_{i}", "status": "active"})
        # A worker died in the middle of this one's attempt: the sweeper must recover it.
        lost = stack.hookline.publish("acme", "crew.document.processed", {"crew_id": "crw_lost"})
        stack.execute("UPDATE deliveries SET state = 'in_flight', attempt_count = 1, "
                      "lease_expires_at = now() - interval '1 minute' WHERE event_id = :e",
                      e=lost.event_id)

        stack.worker()
        wait_until(lambda: len(receiver.accepted("/ok")) == 4, timeout=30,
                   what="4 deliveries to /ok, the lost one included")
        wait_until(lambda: stack.sql("SELECT count(*) FROM deliveries WHERE endpoint_id = :e "
                                     "AND state = 'dead'", e=reject)[0][0] == 3,
                   what="3 dead letters for /reject")
        wait_until(lambda: len(receiver.for_path("/down")) >= 3, what="3 attempts at /down")

        port = free_port()
        api = ApiProcess(stack, "api", ["--port", str(port)]).start()
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            assert requests.get(url, timeout=10).status_code == 401
            assert requests.get(url, headers={"Authorization": "Bearer wrong-token-0123456789"},
                                timeout=10).status_code == 401
            answer = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        finally:
            api.stop()
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        samples = parse(text)
        contract = "crewpass"

        # Worker counters, added up across processes by the API.
        assert value(samples, "hookline_deliveries_total", outcome="succeeded",
                     contract=contract, tenant=tenant.id) == 4
        assert value(samples, "hookline_deliveries_total", outcome="dead", tenant=tenant.id) == 3
        assert value(samples, "hookline_deliveries_total", outcome="retrying", tenant=tenant.id) >= 3
        assert value(samples, "hookline_attempt_duration_seconds_count", contract=contract,
                     status_class="2xx") == 4
        assert value(samples, "hookline_attempt_duration_seconds_count", status_class="4xx") == 3
        assert value(samples, "hookline_attempt_duration_seconds_count", status_class="5xx") >= 3
        assert value(samples, "hookline_attempt_duration_seconds_sum") > 0
        assert value(samples, "hookline_dead_letters_total", reason="permanent_4xx") == 3
        assert value(samples, "hookline_sweeper_runs_total") >= 1
        assert value(samples, "hookline_sweeper_recoveries_total", kind="lost") == 1
        assert value(samples, "hookline_sweeper_recoveries_total", kind="redispatched") >= 1

        # Gauges read from PostgreSQL and Redis at scrape time.
        down_queue = queue_for(down, stack.settings.partitions)
        assert value(samples, "hookline_deliveries_waiting", queue=down_queue) == 3
        assert present(samples, "hookline_deliveries_waiting", queue="hookline.p0", state="pending")
        assert value(samples, "hookline_oldest_undelivered_age_seconds") > 0
        assert value(samples, "hookline_dead_letters_stored", reason="permanent_4xx") == 3
        assert value(samples, "hookline_endpoint_success_ratio", endpoint=ok, tenant=tenant.id) == 1
        assert value(samples, "hookline_endpoint_success_ratio", endpoint=down) == 0
        assert present(samples, "hookline_endpoint_success_ratio", endpoint=down)
        assert value(samples, "hookline_endpoint_attempts", endpoint=ok) == 4
        assert value(samples, "hookline_endpoint_series_omitted") == 0
        assert present(samples, "hookline_broker_queue_messages", queue=down_queue)
        assert value(samples, "hookline_metrics_source_up", source="database") == 1
        assert value(samples, "hookline_metrics_source_up", source="broker") == 1

        # Ids only: no secret, key, token, payload, URL or receiver path anywhere.
        for forbidden in (ok_secret, reject_secret, down_secret, api_key, TOKEN, PAYLOAD_MARKER,
                          "http://", "https://", "127.0.0.1", f":{receiver.port}", "/reject",
                          "/down", stack.settings.database_url or "postgres"):
            assert forbidden not in text, forbidden
