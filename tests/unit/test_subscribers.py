"""The subscriber cache: read once per tenant, invalidated by every endpoint change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from app import admin
from app.db import create_engine_for, session_factory
from app.engine import DeliveryEngine
from app.models import Tenant
from app.subscribers import SubscriberCache
from tests.unit.conftest import T0, FixedClock, Harness, ScriptedTransport, http

ENDPOINT_READ = re.compile(r"\bFROM endpoints\b", re.IGNORECASE)


class Statements:
    """Every SQL statement an engine runs while listening."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def endpoint_reads(self) -> int:
        return sum(1 for s in self.seen if ENDPOINT_READ.search(s))

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness


@pytest.fixture
def statements(h: Harness) -> Iterator[Statements]:
    listener = Statements()
    event.listen(h.engine, "before_cursor_execute", listener)
    yield listener
    event.remove(h.engine, "before_cursor_execute", listener)


class Publisher:
    """One process's publishing: a single cache kept across its publishes."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.cache = SubscriberCache()

    def targets(self, tenant: Tenant, event_type: str = "crew.document.processed",
                **options: Any) -> set[str]:
        """The endpoint ids an event of *event_type* is delivered to now."""
        result = self.h.publish(tenant, event_type, cache=self.cache, **options)
        return {self.h.delivery(i).endpoint_id for i in result.delivery_ids}


def version(h: Harness, tenant: Tenant) -> int:
    with h.engine.connect() as conn:
        return int(conn.scalar(select(Tenant.endpoints_version)
                               .where(Tenant.id == tenant.id)) or 0)


class TestCaching:
    """A tenant's endpoints are read once, then served from the cache."""

    def test_a_second_publish_to_the_same_tenant_reads_no_endpoints(
        self, h: Harness, statements: Statements
    ) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant)
        publisher = Publisher(h)
        statements.clear()

        first = h.publish(tenant, cache=publisher.cache)
        assert statements.endpoint_reads() == 1
        statements.clear()
        second = h.publish(tenant, "run.failed", {"run": 1}, cache=publisher.cache)

        assert statements.endpoint_reads() == 0
        assert [h.delivery(i).endpoint_id for i in first.delivery_ids + second.delivery_ids] == [
            endpoint.id, endpoint.id]

    def test_another_tenant_s_change_keeps_this_tenant_s_entry(
        self, h: Harness, statements: Statements
    ) -> None:
        tenant, other = h.tenant(), h.tenant()
        h.endpoint(tenant)
        publisher = Publisher(h)
        publisher.targets(tenant)
        h.endpoint(other)
        statements.clear()

        publisher.targets(tenant)

        assert statements.endpoint_reads() == 0

    def test_each_environment_has_its_own_entry(self, h: Harness) -> None:
        tenant = h.tenant()
        production = h.endpoint(tenant, url="https://receiver.example/prod")
        staging = h.endpoint(tenant, url="https://receiver.example/staging",
                             environment="staging")
        publisher = Publisher(h)
        assert publisher.targets(tenant) == {production.id}
        assert publisher.targets(tenant, environment="staging") == {staging.id}
        assert publisher.targets(tenant) == {production.id}


class TestInvalidation:
    """Every change to an endpoint bumps its tenant's version; the next publish sees it."""

    def test_adding_an_endpoint(self, h: Harness) -> None:
        tenant = h.tenant()
        first = h.endpoint(tenant, url="https://receiver.example/1")
        publisher = Publisher(h)
        assert publisher.targets(tenant) == {first.id}
        before = version(h, tenant)

        second = h.endpoint(tenant, url="https://receiver.example/2")

        assert version(h, tenant) > before
        assert publisher.targets(tenant) == {first.id, second.id}

    @pytest.mark.parametrize("how", ["set_endpoint_enabled", "update_endpoint"])
    def test_disabling_an_endpoint(self, h: Harness, how: str) -> None:
        tenant = h.tenant()
        kept = h.endpoint(tenant, url="https://receiver.example/kept")
        off = h.endpoint(tenant, url="https://receiver.example/off")
        publisher = Publisher(h)
        assert publisher.targets(tenant) == {kept.id, off.id}
        before = version(h, tenant)

        if how == "set_endpoint_enabled":
            admin.set_endpoint_enabled(h.sessions, off.id, False)
        else:
            admin.update_endpoint(h.sessions, h.catalogue, off.id, {"enabled": False})

        assert version(h, tenant) > before
        assert publisher.targets(tenant) == {kept.id}

    def test_enabling_an_endpoint_again(self, h: Harness) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant, enabled=False)
        publisher = Publisher(h)
        assert publisher.targets(tenant) == set()
        admin.set_endpoint_enabled(h.sessions, endpoint.id, True)
        assert publisher.targets(tenant) == {endpoint.id}

    def test_deleting_an_endpoint(self, h: Harness) -> None:
        tenant = h.tenant()
        kept = h.endpoint(tenant, url="https://receiver.example/kept")
        gone = h.endpoint(tenant, url="https://receiver.example/gone")
        publisher = Publisher(h)
        assert publisher.targets(tenant) == {kept.id, gone.id}
        before = version(h, tenant)

        admin.delete_endpoint(h.sessions, gone.id)

        assert version(h, tenant) > before
        assert publisher.targets(tenant) == {kept.id}

    @pytest.mark.parametrize(
        ("changes", "receives"),
        [({"events": ["run.*"]}, False), ({"environment": "staging"}, False),
         ({"description": "renamed"}, True)],
        ids=["filters", "environment", "description"],
    )
    def test_updating_an_endpoint(self, h: Harness, changes: dict[str, Any],
                                  receives: bool) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant)
        publisher = Publisher(h)
        assert publisher.targets(tenant) == {endpoint.id}
        before = version(h, tenant)

        admin.update_endpoint(h.sessions, h.catalogue, endpoint.id, changes)

        assert version(h, tenant) > before
        assert publisher.targets(tenant) == ({endpoint.id} if receives else set())

    def test_a_filter_widened_by_an_update_is_seen(self, h: Harness) -> None:
        tenant = h.tenant()
        endpoint = h.endpoint(tenant, events=["run.failed"])
        publisher = Publisher(h)
        assert publisher.targets(tenant) == set()
        admin.update_endpoint(h.sessions, h.catalogue, endpoint.id, {"events": ["crew.*"]})
        assert publisher.targets(tenant) == {endpoint.id}

    def test_a_change_made_by_another_process_is_seen(self, h: Harness) -> None:
        tenant = h.tenant()
        first = h.endpoint(tenant, url="https://receiver.example/1")
        publisher = Publisher(h)
        assert publisher.targets(tenant) == {first.id}
        elsewhere: Engine = create_engine_for(h.settings)
        try:
            other_sessions = session_factory(elsewhere)
            second = admin.add_endpoint(
                other_sessions, h.catalogue, tenant=tenant.id,
                url="https://receiver.example/2", events=["*"]).endpoint
            admin.set_endpoint_enabled(other_sessions, first.id, False)
        finally:
            elsewhere.dispose()

        assert publisher.targets(tenant) == {second.id}

    def test_the_engine_s_410_disable_bumps_the_version(self, h: Harness) -> None:
        tenant = h.tenant()
        gone = h.endpoint(tenant, url="https://receiver.example/gone")
        kept = h.endpoint(tenant, url="https://receiver.example/kept")
        publisher = Publisher(h)
        result = h.publish(tenant, cache=publisher.cache)
        [to_gone] = [i for i in result.delivery_ids if h.delivery(i).endpoint_id == gone.id]
        before = version(h, tenant)

        DeliveryEngine(h.settings, h.engine, ScriptedTransport(http(410)),
                       clock=FixedClock(T0)).run([to_gone])

        assert not h.endpoint_row(gone.id).enabled
        assert version(h, tenant) == before + 1
        assert publisher.targets(tenant) == {kept.id}
