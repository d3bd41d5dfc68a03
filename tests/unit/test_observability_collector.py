"""The scrape-time gauges on a real (SQLite) database and a fake Redis, and the metrics token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine

from app.brokers import RedisBroker
from app.models import DeliveryState, utcnow
from app.observability.collector import StateCollector
from app.observability.exposition import token_matches
from app.partitioning import queue_for
from tests.unit.conftest import Harness


def registry(collector: StateCollector) -> CollectorRegistry:
    result = CollectorRegistry(auto_describe=False)
    result.register(collector)
    return result


class TestStateCollector:
    def test_waiting_deliveries_dead_letters_and_the_oldest_age_come_from_the_database(
            self, harness: Harness) -> None:
        tenant = harness.tenant()
        endpoint = harness.endpoint(tenant)
        waiting = [harness.publish(tenant).delivery_ids[0] for _ in range(3)]
        harness.set_delivery(waiting[0], created_at=utcnow() - timedelta(minutes=10))
        harness.set_delivery(waiting[2], state=DeliveryState.DEAD, dead_reason="exhausted")
        broker = fakeredis.FakeRedis()
        broker.rpush(harness.settings.broker_key_prefix + queue_for(endpoint.id, 8), b"m1", b"m2")
        reg = registry(StateCollector(harness.settings, lambda: harness.engine,
                                      lambda: RedisBroker(broker, harness.settings.broker_key_prefix)))
        queue = queue_for(endpoint.id, harness.settings.partitions)
        assert reg.get_sample_value("hookline_deliveries_waiting",
                                    {"queue": queue, "state": "pending"}) == 2
        age = reg.get_sample_value("hookline_oldest_undelivered_age_seconds")
        assert age is not None and 590 < age < 700
        assert reg.get_sample_value("hookline_dead_letters_stored", {"reason": "exhausted"}) == 1
        assert reg.get_sample_value("hookline_broker_queue_messages", {"queue": queue}) == 2
        assert reg.get_sample_value("hookline_metrics_source_up", {"source": "database"}) == 1

    def test_a_database_that_fails_leaves_the_broker_series_and_says_so(self, harness: Harness
                                                                         ) -> None:
        broken = create_engine("sqlite:////nonexistent-dir/never.db")
        reg = registry(StateCollector(harness.settings, lambda: broken,
                                      lambda: RedisBroker(fakeredis.FakeRedis())))
        text = generate_latest(reg).decode()
        assert 'hookline_metrics_source_up{source="database"} 0.0' in text
        assert 'hookline_metrics_source_up{source="broker"} 1.0' in text
        assert "hookline_broker_queue_messages" in text
        assert "hookline_deliveries_waiting" not in text

    def test_endpoint_series_are_capped_by_the_setting(self, make_harness: Callable[..., Harness]
                                                        ) -> None:
        harness = make_harness(metrics_max_endpoints=1)
        tenant = harness.tenant()
        endpoints = [harness.endpoint(tenant, url=f"https://r{i}.example/h") for i in range(3)]
        for endpoint in endpoints:
            [delivery] = harness.publish(tenant, endpoint_ids=[endpoint.id]).delivery_ids
            with harness.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO attempts (delivery_id, attempt_number, started_at, status_code) "
                    "VALUES (?, 1, ?, ?)", (delivery, utcnow().replace(tzinfo=None).isoformat(" "),
                                            500 if endpoint is endpoints[1] else 200))
        reg = registry(StateCollector(harness.settings, lambda: harness.engine,
                                      lambda: RedisBroker(fakeredis.FakeRedis())))
        ratios = [s for m in reg.collect() if m.name == "hookline_endpoint_success_ratio"
                  for s in m.samples]
        assert [(s.labels["endpoint"], s.value) for s in ratios] == [(endpoints[1].id, 0.0)]
        assert reg.get_sample_value("hookline_endpoint_series_omitted") == 2


class TestMetricsToken:
    @pytest.mark.parametrize(("header", "token", "allowed"), [
        (None, None, True),
        ("Bearer anything", None, True),
        (None, "s3cret-token-0123456789", False),
        ("Bearer s3cret-token-0123456789", "s3cret-token-0123456789", True),
        ("bearer  s3cret-token-0123456789 ", "s3cret-token-0123456789", True),
        ("Bearer wrong", "s3cret-token-0123456789", False),
        ("Basic s3cret-token-0123456789", "s3cret-token-0123456789", False),
        ("s3cret-token-0123456789", "s3cret-token-0123456789", False),
    ])
    def test_a_set_token_must_come_as_a_bearer_credential(self, header: str | None,
                                                          token: str | None, allowed: bool) -> None:
        assert token_matches(header, token) is allowed
