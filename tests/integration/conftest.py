"""Integration fixtures: real PostgreSQL, real Redis, real worker processes, a real receiver.

Each test session gets its own PostgreSQL database and its own Redis key prefix, and
drops them at the end. On CI an unreachable server fails the run; elsewhere the
integration tests skip with the reason.

Stacks use Redis unless a test asks for RabbitMQ with
``@pytest.mark.parametrize("broker", BROKERS, indirect=True)``: then the session gets
its own RabbitMQ vhost (made with ``rabbitmqctl``, deleted at the end; or the vhost of
``TEST_HOOKLINE_RABBITMQ``), and each such test starts with Hookline's queues deleted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from kombu import Connection
from sqlalchemy import text

from app import db
from app.api import create_app
from app.client import Hookline
from app.embedded import redis_server_binary
from app.names import BROKER_EPOCH_KEY, DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, partition_queue
from app.receiver import Receiver
from config.settings import Settings, get_settings
from tests.integration.api_callers import Caller, tenant_caller
from tests.support import wait_until

PG_ADMIN_URL = os.environ.get("TEST_HOOKLINE_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_HOOKLINE_REDIS", "redis://127.0.0.1:6379/0")
#: A RabbitMQ vhost the tests may empty; unset: a vhost of its own on the local node.
RABBITMQ_URL = os.environ.get("TEST_HOOKLINE_RABBITMQ")
RABBITMQ_NODE = "amqp://guest:guest@127.0.0.1:5672"
#: The brokers the core flows are proven on (``indirect=True`` on the ``broker`` fixture).
BROKERS = ["redis", "rabbitmq"]
ROOT = Path(__file__).resolve().parents[2]

#: Test timings: quick retries and sweeps, short leases, so faults recover in seconds.
FAST = {
    "retry_base_seconds": 0.3, "retry_multiplier": 2.0, "retry_jitter": 0.0,
    "sweep_interval": 0.5, "redispatch_after": 5.0, "lease_seconds": 3.0,
    "connect_timeout": 1.0, "read_timeout": 3.0, "worker_concurrency": 4,
    "broker_countdown_max": 30.0, "log_level": "INFO",
}
#: The receivers are plain http on loopback, which the egress policy refuses by default.
LOOPBACK_RECEIVERS: dict[str, Any] = {"allow_http": True, "egress_allow": ["127.0.0.0/8", "::1/128"]}


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); the integration tests need it"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"hookline_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db.upgrade(get_settings(), url=url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    prefix = f"hookline-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The URL of a RabbitMQ vhost that only this test session uses."""
    if RABBITMQ_URL:
        yield RABBITMQ_URL
        return
    try:
        with Connection(RABBITMQ_NODE + "/", connect_timeout=3) as probe:
            probe.connect()
    except Exception as exc:
        _unavailable("RabbitMQ", exc)
    vhost = f"hookline-test-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError) as exc:
        _unavailable("rabbitmqctl (to make a test vhost)", exc)
    try:
        yield f"{RABBITMQ_NODE}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def delete_hookline_queues(url: str, partitions: int = 64) -> None:
    """Delete every queue Hookline declares (and the reset marker's) in the vhost at *url*."""
    names = [partition_queue(i) for i in range(partitions)]
    names += [DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, BROKER_EPOCH_KEY]
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
        channel.close()


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str:
    """The broker this test's stacks use: ``redis`` unless parametrized (see BROKERS)."""
    return str(getattr(request, "param", "redis"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """Settings, the matching environment for child processes, and a publishing client."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self.hookline = Hookline(settings)
        self.workers: list[WorkerProcess] = []

    def worker(self, *args: str, name: str = "w") -> WorkerProcess:
        process = WorkerProcess(self, name=f"{name}{len(self.workers)}", args=list(args))
        self.workers.append(process)
        return process.start()

    def sql(self, statement: str, **params: Any) -> list[Any]:
        with self.hookline.engine.connect() as conn:
            return list(conn.execute(text(statement), params).all())

    def execute(self, statement: str, **params: Any) -> None:
        """Run a writing statement and commit it."""
        with self.hookline.engine.begin() as conn:
            conn.execute(text(statement), params)

    def close(self) -> None:
        for process in self.workers:
            process.stop()
        self.hookline.close()


class ChildProcess:
    """``python -m app.cli <command> …`` in its own process group, logging to a file.

    :meth:`start` waits for *ready_marker* to appear in the part of the log written
    since the start, so one log file may hold several runs of the same process.
    """

    command: tuple[str, ...] = ()
    ready_marker = b""
    ready_timeout = 30.0

    def __init__(self, stack: Stack, name: str, args: list[str]) -> None:
        self.stack = stack
        self.name = name
        self.args = args
        self.log = stack.settings.data_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "app.cli", *self.command, *self.args]

    def start(self, ready_timeout: float | None = None) -> Self:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as handle:
            popen = self.popen = subprocess.Popen(
                self.argv(), env=self.stack.env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                start_new_session=True)

        def ready() -> bool:
            return self.ready_marker in self.log.read_bytes()[offset:] or popen.poll() is not None

        wait_until(ready, timeout=ready_timeout or self.ready_timeout,
                   what=f"{self.name} to be ready")
        assert popen.poll() is None, self.text()[-3000:]
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acknowledgements."""
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after *timeout*); the exit code, None if never started."""
        if self.popen is None:
            return None
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return int(self.popen.returncode)


class WorkerProcess(ChildProcess):
    """``hookline worker --beat`` (the sweeper schedule included)."""

    ready_marker = b" ready."

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "app.cli", "worker", "--beat", f"--hostname={self.name}@%h",
                *self.args]


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(settings.as_environment())
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def make_stack(pg_url: str, redis_prefix: str, tmp_path: Path, broker: str,
               request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []
    where: dict[str, Any] = {"broker_url": REDIS_URL, "broker_key_prefix": redis_prefix}
    if broker == "rabbitmq":
        url = request.getfixturevalue("rabbitmq_url")
        delete_hookline_queues(url)
        where = {"broker_url": url, "broker_key_prefix": ""}

    def make(**overrides: Any) -> Stack:
        options: dict[str, Any] = {
            "database_url": pg_url, **where,
            "data_dir": tmp_path, **FAST, **LOOPBACK_RECEIVERS, **overrides,
        }
        settings = get_settings(**options)
        stack = Stack(settings, env_for(settings))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture(autouse=True)
def _clean_database(pg_url: str, redis_prefix: str) -> Iterator[None]:
    """Every test starts from empty tables and empty queues."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE attempts, deliveries, events, endpoints, tenants CASCADE")
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        client.delete(key)
    client.close()
    yield


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    """The management API of *stack*, in process."""
    with TestClient(create_app(stack.hookline)) as test_client:
        yield test_client


@pytest.fixture
def acme(stack: Stack, client: TestClient) -> Caller:
    return tenant_caller(stack, client, "acme")


@pytest.fixture
def globex(stack: Stack, client: TestClient) -> Caller:
    return tenant_caller(stack, client, "globex")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver().start()
    yield instance
    instance.stop()


class PrivateRedis:
    """A real redis-server on a free loopback port that a test may flush or restart."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.binary = shutil.which("redis-server") or redis_server_binary()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> PrivateRedis:
        self.popen = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                return bool(self.client().ping())
            except redis.RedisError:
                return False

        wait_until(up, timeout=10, what="private redis-server")
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()
