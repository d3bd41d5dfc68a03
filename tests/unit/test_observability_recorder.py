"""The workers' counters: one batch's outcomes and attempts, sweeper runs, and never an
exception into the engine."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from app.engine.claim import Claim, EndpointRow, EventRow
from app.engine.pipeline import BatchOutcome
from app.engine.schedule import ScheduledRetry
from app.observability import recorder as metrics
from app.observability.recorder import Recorder
from app.sweeper import SweepReport

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def claim(delivery_id: str, *, contract: str = "crewpass", tenant: str = "tnt_a") -> Claim:
    endpoint = EndpointRow(id=f"ep_{tenant}", tenant_id=tenant, url="https://secret.example/x",
                           contract=contract, secret="whsec_never_shown", previous_secret=None,
                           previous_secret_expires_at=None, headers=None, auth_header=None,
                           timeout_seconds=None, max_attempts=None, enabled=True, deleted_at=None)
    event = EventRow(id=f"evt_{delivery_id}", tenant_id=tenant, event_type="crew.status.changed",
                     payload={"crew_id": "c1"}, occurred_at=T0)
    return Claim(delivery_id=delivery_id, attempt_number=1, endpoint=endpoint, event=event)


def attempt(delivery_id: str, duration_ms: float | None, status: int | None) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "duration_ms": duration_ms, "status_code": status}


def sample(recorder: Recorder, name: str, **labels: str) -> float:
    found = recorder.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


class TestOutcomes:
    """Each claimed delivery is counted once, under its outcome, contract and tenant."""

    def test_a_batch_is_counted_by_outcome_contract_and_tenant(self) -> None:
        recorder = Recorder()
        claims = [claim("d1"), claim("d2"), claim("d3", contract="standard-webhooks", tenant="tnt_b"),
                  claim("d4"), claim("d5")]
        outcome = BatchOutcome(succeeded=["d1", "d2"], dead=[("d3", "permanent_4xx")],
                               retries=[ScheduledRetry("d4", "ep_tnt_a", 5.0)],
                               parked=["d5"], deferred=["d5"])
        recorder.outcomes(claims, [], outcome)
        assert sample(recorder, "hookline_deliveries_total", outcome="succeeded",
                      contract="crewpass", tenant="tnt_a") == 2
        assert sample(recorder, "hookline_deliveries_total", outcome="dead",
                      contract="standard-webhooks", tenant="tnt_b") == 1
        assert sample(recorder, "hookline_deliveries_total", outcome="retrying",
                      contract="crewpass", tenant="tnt_a") == 1
        assert sample(recorder, "hookline_deliveries_total", outcome="deferred",
                      contract="crewpass", tenant="tnt_a") == 1
        assert sample(recorder, "hookline_dead_letters_total", reason="permanent_4xx") == 1

    def test_attempt_durations_go_to_the_histogram_in_seconds_by_status_class(self) -> None:
        recorder = Recorder()
        recorder.outcomes([claim("d1"), claim("d2")],
                          [attempt("d1", 40.0, 200), attempt("d2", 2500.0, None)],
                          BatchOutcome(succeeded=["d1"], retries=[ScheduledRetry("d2", "e", 1)]))
        assert sample(recorder, "hookline_attempt_duration_seconds_count", contract="crewpass",
                      status_class="2xx") == 1
        assert sample(recorder, "hookline_attempt_duration_seconds_sum", contract="crewpass",
                      status_class="2xx") == pytest.approx(0.04)
        assert sample(recorder, "hookline_attempt_duration_seconds_bucket", contract="crewpass",
                      status_class="error", le="2.5") == 1
        assert sample(recorder, "hookline_attempt_duration_seconds_bucket", contract="crewpass",
                      status_class="error", le="1.0") == 0

    def test_a_superseded_delivery_is_counted_as_such_and_its_attempt_is_not_timed(self) -> None:
        recorder = Recorder()
        recorder.outcomes([claim("d1")], [attempt("d1", 10.0, 200)],
                          BatchOutcome(superseded=["d1"]))
        assert sample(recorder, "hookline_deliveries_total", outcome="superseded",
                      contract="crewpass", tenant="tnt_a") == 1
        assert sample(recorder, "hookline_attempt_duration_seconds_count", contract="crewpass",
                      status_class="2xx") == 0

    def test_no_url_or_secret_becomes_a_label(self) -> None:
        recorder = Recorder()
        recorder.outcomes([claim("d1")], [attempt("d1", 1.0, 200)], BatchOutcome(succeeded=["d1"]))
        labels = {v for metric in recorder.registry.collect() for s in metric.samples
                  for v in s.labels.values()}
        assert not any("secret" in v or "example" in v for v in labels), labels


class TestSweep:
    def test_a_run_counts_itself_its_recoveries_and_its_dead_letters(self) -> None:
        recorder = Recorder()
        recorder.sweep(SweepReport(lost=3, exhausted=1, dispatched=7, broker_reset=True,
                                   dead=[("d1", "exhausted")]))
        recorder.sweep(SweepReport())
        assert sample(recorder, "hookline_sweeper_runs_total") == 2
        assert sample(recorder, "hookline_sweeper_recoveries_total", kind="lost") == 3
        assert sample(recorder, "hookline_sweeper_recoveries_total", kind="exhausted") == 1
        assert sample(recorder, "hookline_sweeper_recoveries_total", kind="redispatched") == 7
        assert sample(recorder, "hookline_sweeper_broker_resets_total") == 1
        assert sample(recorder, "hookline_dead_letters_total", reason="exhausted") == 1


class TestFailuresAreSwallowed:
    """Metrics never cost a delivery: a failure is logged and the caller goes on."""

    @pytest.fixture(autouse=True)
    def _no_failures_yet(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(metrics, "_failures", {})

    def test_a_broken_batch_record_is_logged_not_raised(self, caplog: pytest.LogCaptureFixture
                                                        ) -> None:
        with caplog.at_level(logging.WARNING, logger="app.observability.recorder"):
            metrics.observe_outcomes([object()], [], BatchOutcome())  # type: ignore[list-item]
        assert "recording delivery metrics failed" in caplog.text

    def test_a_broken_sweep_report_is_logged_not_raised(self, caplog: pytest.LogCaptureFixture
                                                        ) -> None:
        with caplog.at_level(logging.WARNING, logger="app.observability.recorder"):
            metrics.observe_sweep(None)  # type: ignore[arg-type]
        assert "recording sweeper metrics failed" in caplog.text

    def test_repeated_failures_are_logged_once_in_a_thousand(self, caplog: pytest.LogCaptureFixture
                                                              ) -> None:
        with caplog.at_level(logging.WARNING, logger="app.observability.recorder"):
            for _ in range(metrics.LOG_EVERY):
                metrics.observe_sweep(None)  # type: ignore[arg-type]
        assert caplog.text.count("recording sweeper metrics failed") == 2
