"""The settings object: every knob Hookline has, read from ``HOOKLINE_*`` variables.

Nothing here is built at import time: :func:`get_settings` reads the environment
each time it is called, validates it, and resolves the embedded defaults (a SQLite
file and an embedded Redis in the data directory) when no server is configured.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Port of the embedded Redis; away from 6379 so it never shadows a real server.
DEFAULT_EMBEDDED_REDIS_PORT = 6399
#: Queue-name prefix; every queue and Redis key Hookline owns starts with it.
QUEUE_PREFIX = "hookline"
#: Broker URL schemes: Redis, and RabbitMQ (kombu's py-amqp transport).
REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://")
AMQP_SCHEMES = ("amqp://", "amqps://")


class Settings(BaseSettings):
    """Validated configuration. Unknown ``HOOKLINE_*`` variables are an error, not ignored."""

    model_config = SettingsConfigDict(env_prefix="HOOKLINE_", extra="forbid", frozen=True)

    data_dir: Path = Field(default=Path(".hookline"), description="Where embedded state lives.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite in the data directory."
    )
    broker_url: str | None = Field(
        default=None, description="Redis (redis://, rediss://, redis+socket://) or RabbitMQ "
        "(amqp://, amqps://) URL; unset means an embedded Redis started on demand."
    )
    broker_key_prefix: str = Field(
        default="", description="Prefix on every broker key (kombu global_keyprefix); Redis "
        "only: on RabbitMQ a vhost in the URL keeps deployments apart."
    )
    embedded_redis_port: int = Field(default=DEFAULT_EMBEDDED_REDIS_PORT, ge=1, le=65535)

    partitions: int = Field(default=8, ge=1, le=1024, description="Number of delivery queues.")

    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    read_timeout: float = Field(default=30.0, gt=0, le=300)
    allow_http: bool = Field(
        default=False, description="Accept plain http:// endpoint URLs (development only)."
    )
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks deliveries may reach although they are loopback, private or otherwise "
        "blocked (see app/egress.py), comma-separated or a JSON list: 127.0.0.0/8,::1.",
    )
    egress_proxy: str | None = Field(
        default=None, description="http(s) proxy URL every delivery goes through."
    )
    max_attempts: int = Field(default=8, ge=1, le=50, description="Attempts in all, first one included.")
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_multiplier: float = Field(default=4.0, ge=1)
    retry_max_delay_seconds: float = Field(default=6 * 3600, gt=0)
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_after_max_seconds: float = Field(default=3600, gt=0)

    visibility_timeout: int = Field(default=3600, ge=10, description="Redis broker visibility timeout.")
    broker_consumer_timeout: float = Field(
        default=1800.0, ge=10,
        description="RabbitMQ's consumer_timeout in seconds, as the server has it (its default is "
        "30 min): a message a worker holds unacknowledged longer closes the worker's channel.")
    broker_countdown_max: float = Field(
        default=60.0,
        gt=0,
        description="Longest retry delay held by the broker; longer ones are parked in SQL.",
    )
    sweep_interval: float = Field(default=5.0, gt=0, description="Seconds between sweeper runs.")
    redispatch_after: float = Field(
        default=900.0,
        gt=0,
        description="A due delivery not picked up this long after its message was sent is sent again.",
    )
    lease_seconds: float = Field(
        default=15.0, ge=1, le=3600,
        description="An in-flight delivery's lease; its worker renews it every third of a "
        "lease while it lives, so a dead worker's deliveries are due again within one lease.")
    lost_after: float = Field(
        default=10.0, ge=1,
        description="A delivery due this long whose message is no longer in its queue (held "
        "by a worker that died, or dropped) is sent again.")
    record_patience: float = Field(
        default=120.0, ge=0, le=3600,
        description="How long a worker keeps trying to record a batch's outcomes while the "
        "database is unreachable before it gives the batch up to the sweeper.")
    sweep_batch: int = Field(default=500, ge=1, le=10_000)
    task_batch: int = Field(default=100, ge=1, le=1000, description="Deliveries per task, at most.")
    endpoint_concurrency: int = Field(
        default=8, ge=1, le=1024,
        description="Attempts in flight to one endpoint per worker process; beyond it a "
        "delivery waits `slot_wait` seconds, then is deferred (not counted as an attempt).",
    )
    slot_wait: float = Field(default=1.0, ge=0, le=60,
                             description="How long a delivery waits for its endpoint's slot.")
    circuit_failure_threshold: int = Field(
        default=10, ge=1, le=1_000_000,
        description="Failures in a row that open an endpoint's circuit.")
    circuit_cooloff_seconds: float = Field(
        default=15.0, gt=0, description="First cool-off of an open circuit; doubled per failed probe.")
    circuit_max_cooloff_seconds: float = Field(default=600.0, gt=0)
    auto_disable_after: float = Field(
        default=5 * 86400, ge=0,
        description="Seconds an endpoint may fail without one success before it is disabled "
        "(hookline.endpoint.disabled goes out); 0 never disables.")
    worker_max_in_flight: int = Field(
        default=500, ge=1, le=100_000,
        description="Deliveries one worker process works on at once (its memory); a batch "
        "waits for room before it claims.")
    worker_prefetch: int = Field(
        default=2, ge=1, le=1024,
        description="Celery prefetch multiplier: messages reserved per pool slot.")

    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    api_host: str = Field(default="127.0.0.1", description="Where `hookline api` listens.")
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_max_request_bytes: int = Field(
        default=512 * 1024, ge=1024,
        description="Management API request bodies larger than this are refused with 413.",
    )
    api_max_batch_request_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024,
        description="Limit for POST /api/{tenantId}/events/batch bodies (up to 1,000 events).",
    )
    api_waiting_test_sends: int = Field(
        default=10, ge=1, le=1000,
        description="Test sends one tenant may keep waiting for their attempt at once, per API "
        "process; more are refused with 429.",
    )
    public_url: str | None = Field(
        default=None,
        description="The API's address as senders reach it, the base of incoming webhook URLs "
        "(…/hooks/{token}); unset means http://{api_host}:{api_port}.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Directory the worker processes write their Prometheus counters to and "
        "`hookline api` reads them from for /metrics (prometheus-client multiprocess mode); "
        "shared by every worker and API process. Unset: /metrics has the database and broker "
        "gauges only.",
    )
    metrics_token: str | None = Field(
        default=None, min_length=16,
        description="Bearer token /metrics requires; unset leaves /metrics open (internal networks).",
    )
    metrics_max_endpoints: int = Field(
        default=100, ge=0, le=10_000,
        description="At most this many endpoints get their own success-ratio series (the worst first).",
    )
    metrics_window_seconds: float = Field(
        default=600.0, gt=0, le=86400,
        description="The window of attempts the per-endpoint success ratio is computed over.",
    )
    rotation_grace_seconds: float = Field(
        default=24 * 3600, ge=0, le=30 * 24 * 3600,
        description="How long a rotated-out secret keeps signing next to the new one.",
    )
    response_excerpt_bytes: int = Field(default=1024, ge=0, le=65536)
    operator_key: str | None = Field(
        default=None, min_length=16, max_length=200,
        description="Key that logs into the web console (/console) as the operator, who sees "
        "every tenant; unset means operator login is disabled (tenants log in with their API key).",
    )
    console_secret: str | None = Field(
        default=None, min_length=16,
        description="Signs the web console's session cookies; unset means a random secret per "
        "process (sessions end when the API restarts).",
    )

    worker_pool: Literal["threads", "prefork", "solo"] = "threads"
    worker_concurrency: int = Field(default=32, ge=1, le=512)
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_broker_api: str | None = Field(
        default=None, description="RabbitMQ management API URL for Flower's broker page "
        "(http://user:pass@host:15672/api/); unset leaves it to Flower's guess.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    user_agent: str = "Hookline/0.1"
    extra_event_types: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="Event types to accept beyond the built-in catalogue: names, or objects with "
        "name, description, scope, internal_fields and idempotency_field.",
    )

    producer_batch: int = Field(default=100, ge=1, le=10_000,
                                description="Outbox rows the producer relays per transaction.")
    producer_poll_interval: float = Field(
        default=0.5, gt=0, le=60,
        description="Seconds between outbox polls; on PostgreSQL a NOTIFY wakes the producer sooner.",
    )
    producer_listen: bool = Field(
        default=True, description="On PostgreSQL, wake on LISTEN/NOTIFY instead of polling alone."
    )
    producer_shutdown_grace: float = Field(
        default=10.0, gt=0, description="Seconds a stopping producer may take to finish its batch."
    )
    outbox_retention: float = Field(
        default=7 * 86400, ge=0, description="Relayed outbox rows older than this are deleted; 0 keeps them."
    )

    retention_days: int = Field(
        default=30, ge=1, le=3650,
        description="Days event payloads, attempts and response excerpts are kept (a tenant may "
        "override it); older ones are pruned, the deliveries keep their states.")
    prune_batch: int = Field(default=1000, ge=1, le=50_000,
                             description="Rows one prune transaction touches, at most.")
    prune_interval: float = Field(default=3600.0, gt=0,
                                  description="Seconds between scheduled prunes (hookline beat).")
    replay_batch: int = Field(default=1000, ge=1, le=50_000,
                              description="Deliveries one replay transaction re-arms, at most.")

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        if not (value.startswith("postgresql+") or value.startswith("sqlite")):
            raise ValueError("HOOKLINE_DATABASE_URL must be a postgresql:// or sqlite:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(REDIS_SCHEMES + AMQP_SCHEMES):
            raise ValueError("HOOKLINE_BROKER_URL must be a redis://, rediss://, redis+socket://, "
                             "amqp:// or amqps:// URL")
        return value

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _split_egress_allow(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("egress_allow")
    @classmethod
    def _check_egress_allow(cls, value: list[str]) -> list[str]:
        networks: list[str] = []
        for entry in value:
            try:
                networks.append(str(ipaddress.ip_network(entry.strip(), strict=True)))
            except ValueError as exc:
                raise ValueError(
                    f"HOOKLINE_EGRESS_ALLOW: {entry!r} is not an IP network: {exc}") from None
        return networks

    @field_validator("egress_proxy")
    @classmethod
    def _check_egress_proxy(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        problem = "HOOKLINE_EGRESS_PROXY must be an http:// or https:// proxy URL with a host"
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise ValueError(problem) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(problem)
        return value

    @field_validator("metrics_token", "metrics_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().rstrip("/")
        problem = ("HOOKLINE_PUBLIC_URL must be an http:// or https:// URL with a host, "
                   "and no query or fragment")
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise ValueError(problem) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check_timings(self) -> Settings:
        if self.broker_countdown_max >= self.visibility_timeout / 2:
            raise ValueError(
                "HOOKLINE_BROKER_COUNTDOWN_MAX must stay below half the visibility timeout, "
                "or a waiting retry would be handed to a second worker"
            )
        if self.broker_kind == "amqp":
            self._check_amqp()
        return self

    def _check_amqp(self) -> None:
        if self.broker_key_prefix:
            raise ValueError("HOOKLINE_BROKER_KEY_PREFIX applies to Redis only; on RabbitMQ "
                             "give each deployment its own vhost in HOOKLINE_BROKER_URL")
        # The longest a worker holds a message unacknowledged: a countdown, then one
        # attempt, then recording its outcome through a database outage.
        held = (self.broker_countdown_max + self.connect_timeout + self.read_timeout
                + self.record_patience)
        if held >= self.broker_consumer_timeout / 2:
            raise ValueError(
                "HOOKLINE_BROKER_COUNTDOWN_MAX + HOOKLINE_CONNECT_TIMEOUT + HOOKLINE_READ_TIMEOUT "
                "+ HOOKLINE_RECORD_PATIENCE must stay below half the RabbitMQ consumer timeout "
                f"(HOOKLINE_BROKER_CONSUMER_TIMEOUT, {self.broker_consumer_timeout:g} s), or "
                "RabbitMQ closes the channel of a worker holding a waiting retry")

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hookline.db').resolve()}"

    @property
    def broker_kind(self) -> Literal["redis", "amqp"]:
        """Which broker the URL names: ``amqp`` (RabbitMQ) or ``redis``."""
        return "amqp" if self.resolved_broker_url.startswith(AMQP_SCHEMES) else "redis"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url is not None:
            return self.broker_url
        return f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def resolved_public_url(self) -> str:
        """Where incoming webhooks are reached: ``public_url``, else the API's own address
        (a wildcard listen address such as 0.0.0.0 stands for this machine, 127.0.0.1)."""
        if self.public_url is not None:
            return self.public_url
        host = self.api_host if self.api_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.api_port}"

    def as_environment(self) -> dict[str, str]:
        """These settings as ``HOOKLINE_*`` variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            text = json.dumps(value) if isinstance(value, list) else str(value)
            env[f"HOOKLINE_{name.upper()}"] = text
        return env

    def endpoint_timeout(self, endpoint_timeout: float | None) -> tuple[float, float]:
        """The (connect, read) timeouts for an endpoint, its own read timeout winning."""
        return (self.connect_timeout, endpoint_timeout or self.read_timeout)


def get_settings(**overrides: Any) -> Settings:
    """Read and validate the settings from the environment; keyword overrides win.

    A ``HOOKLINE_*`` variable that names no setting is an error, so a misspelt
    variable cannot be silently ignored.
    """
    known = {f"HOOKLINE_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.upper().startswith("HOOKLINE_") and k.upper() not in known)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    return Settings(**overrides)
