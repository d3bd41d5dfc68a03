"""Shared fixtures for the unit tests: a migrated SQLite database per test and in-memory fakes.

Nothing here talks to Redis, PostgreSQL or the network. The database is a real SQLite
file in the test's ``tmp_path``, brought to the current schema by the real migrations,
so the SQL under test is the SQL that runs in production on the embedded backend.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app import admin
from app.catalogue import Catalogue, default_catalogue
from app.classification import TransportError
from app.db import create_engine_for, session_factory, transaction, upgrade
from app.dispatch import Dispatcher
from app.egress import egress_policy_from
from app.models import Attempt, Base, Delivery, Endpoint, Event, Tenant
from app.publishing import PublishResult, publish
from app.transport import HttpResult
from config.settings import Settings, get_settings

#: The fixed "now" of every test that injects a clock: far from the wall clock on purpose.
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def clear_hookline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ``HOOKLINE_*`` variable so the developer's shell cannot leak into a test."""
    for name in list(os.environ):
        if name.upper().startswith("HOOKLINE_"):
            monkeypatch.delenv(name)


# -- fakes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentTask:
    """One ``send_task`` call as the broker would have received it."""

    name: str
    args: Any
    options: dict[str, Any]
    #: Message headers (the send time of delivery messages), apart from the routing options.
    headers: dict[str, Any] = field(default_factory=dict)


class RecordingSender:
    """Stands in for the Celery app: records ``send_task`` calls; refuses them while ``down``."""

    def __init__(self) -> None:
        self.sent: list[SentTask] = []
        self.refused: list[SentTask] = []
        self.down = False
        #: Called with each task before it is recorded; may raise to refuse that one task.
        self.on_send: Callable[[SentTask], None] | None = None

    def send_task(self, name: str, args: Any = None, **options: Any) -> SentTask:
        headers = dict(options.pop("headers", None) or {})
        task = SentTask(name, args, dict(options), headers)
        if self.down:
            self.refused.append(task)
            raise ConnectionError("broker unavailable")
        if self.on_send is not None:
            self.on_send(task)
        self.sent.append(task)
        return task

    def delivery_ids_sent(self) -> list[str]:
        """Every delivery id carried by a ``hookline.deliver`` message, in sending order."""
        return [i for task in self.sent if task.name == "hookline.deliver" for i in task.args[0]]


@dataclass(frozen=True, slots=True)
class SentRequest:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: tuple[float, float]


class ScriptedTransport:
    """A receiver that answers with the scripted results in order, recording every request."""

    def __init__(self, *results: HttpResult) -> None:
        self.results = list(results)
        self.calls: list[SentRequest] = []

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> HttpResult:
        self.calls.append(SentRequest(url, body, dict(headers), timeout))
        if not self.results:
            raise AssertionError(f"unexpected request to {url}: no scripted result left")
        return self.results.pop(0)


def http(status: int, headers: Mapping[str, str] | None = None, body: str = "") -> HttpResult:
    """A scripted HTTP answer."""
    return HttpResult(status=status, duration_ms=12.5, headers=dict(headers or {}),
                      body_excerpt=body)


def transport_error(kind: TransportError, cls: str = "ConnectionError",
                    message: str = "connection refused") -> HttpResult:
    """A scripted failure where no HTTP status came back."""
    return HttpResult(status=None, duration_ms=3.0, error=kind, error_class=cls,
                      error_message=message)


class FixedClock:
    """A clock that stays where it is put."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class DictEpochStore:
    """The slice of Redis the sweeper uses, backed by a dict (``SET NX`` semantics included)."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = dict(data or {})

    def get(self, name: str) -> str | None:
        return self.data.get(name)

    def set(self, name: str, value: str, nx: bool = False) -> bool | None:
        if nx and name in self.data:
            return None
        self.data[name] = value
        return True


# -- the harness ---------------------------------------------------------------------------


@dataclass
class Harness:
    """A migrated SQLite database with the objects the services need, and helpers to poke it."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    catalogue: Catalogue
    sender: RecordingSender
    dispatcher: Dispatcher
    _tenant_count: int = field(default=0)

    # creating things
    def tenant(self, name: str | None = None) -> Tenant:
        self._tenant_count += 1
        return admin.create_tenant(self.sessions, name or f"tenant-{self._tenant_count}")

    def endpoint(self, tenant: Tenant | str, *, events: Sequence[str] = ("*",),
                 url: str = "https://receiver.example/hooks", **options: Any) -> Endpoint:
        ref = tenant.id if isinstance(tenant, Tenant) else tenant
        options.setdefault("policy", egress_policy_from(self.settings))
        return admin.add_endpoint(self.sessions, self.catalogue, tenant=ref, url=url,
                                  events=list(events), **options).endpoint

    def publish(self, tenant: Tenant | str, event_type: str = "crew.document.processed",
                data: Any = None, **options: Any) -> PublishResult:
        ref = tenant.id if isinstance(tenant, Tenant) else tenant
        return publish(self.sessions, self.dispatcher, self.catalogue, tenant=ref,
                       event_type=event_type,
                       data={"crew_id": "crw_1", "status": "verified"} if data is None else data,
                       max_payload_bytes=self.settings.max_payload_bytes, **options)

    # reading and adjusting rows
    def delivery(self, delivery_id: str) -> Delivery:
        with transaction(self.sessions) as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None, f"no delivery {delivery_id}"
            return row

    def endpoint_row(self, endpoint_id: str) -> Endpoint:
        with transaction(self.sessions) as session:
            row = session.get(Endpoint, endpoint_id)
            assert row is not None, f"no endpoint {endpoint_id}"
            return row

    def event(self, event_id: str) -> Event:
        with transaction(self.sessions) as session:
            row = session.get(Event, event_id)
            assert row is not None, f"no event {event_id}"
            return row

    def attempts(self, delivery_id: str) -> list[Attempt]:
        with transaction(self.sessions) as session:
            return list(session.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id)
                                        .order_by(Attempt.id)))

    def set_delivery(self, delivery_id: str, **values: Any) -> None:
        with transaction(self.sessions) as session:
            result = session.connection().execute(
                update(Delivery).where(Delivery.id == delivery_id).values(**values))
            assert result.rowcount == 1, f"no delivery {delivery_id}"

    def count(self, model: type[Base]) -> int:
        with transaction(self.sessions) as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file brought to head by the real migrations, once per session, to copy from."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        clear_hookline_env(monkeypatch)
        settings = get_settings(data_dir=tmp_path_factory.mktemp("migrated"))
        upgrade(settings)
    return settings.data_dir / "hookline.db"


@pytest.fixture
def make_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_database: Path
) -> Iterator[Callable[..., Harness]]:
    """A factory of harnesses, each on its own fresh database; keyword arguments are settings.

    Each database is a copy of one migrated by ``app.db.upgrade`` (running Alembic per
    test would take most of the suite's time budget).
    """
    clear_hookline_env(monkeypatch)
    engines: list[Engine] = []

    def make(**overrides: Any) -> Harness:
        settings = get_settings(data_dir=tmp_path / f"hookline-{len(engines)}", **overrides)
        settings.data_dir.mkdir(parents=True)
        shutil.copyfile(migrated_database, settings.data_dir / "hookline.db")
        engine = create_engine_for(settings)
        engines.append(engine)
        sender = RecordingSender()
        return Harness(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            catalogue=default_catalogue(settings.extra_event_types),
            sender=sender,
            dispatcher=Dispatcher(sender, partitions=settings.partitions,
                                  task_batch=settings.task_batch),
        )

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    """A harness with the default settings (8 partitions, 20 deliveries per task)."""
    return make_harness()
