"""The Hookline object: one per process, holding the pieces built from the settings.

Producers use it to publish (``Hookline.from_env().publish(...)``); workers use the
same object to run deliveries and sweeps. Everything is built lazily on first use,
and :meth:`Hookline.after_fork` drops what must not cross a fork.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.admin import validate_endpoint_url
from app.brokers import AmqpBroker, Broker, RedisBroker
from app.catalogue import Catalogue, default_catalogue
from app.coalescing import EnqueueCoalescer
from app.db import create_engine_for, session_factory
from app.dispatch import Dispatcher, TaskSender
from app.egress import EgressPolicy, egress_policy_from
from app.embedded import ensure_embedded_redis
from app.engine import DeliveryEngine
from app.engine.pipeline import BatchSender
from app.engine.record import park as park_deliveries
from app.engine.send import AsyncSender
from app.fanout import BatchResult, publish_many
from app.publishing import PublishResult, publish
from app.subscribers import SubscriberCache
from app.sweeper import Sweeper
from app.transport import Transport
from config.settings import Settings, get_settings


class Hookline:
    def __init__(self, settings: Settings, sender: TaskSender | None = None,
                 transport: Transport | BatchSender | None = None) -> None:
        self.settings = settings
        self._sender = sender
        self._transport = transport

    @classmethod
    def from_env(cls, **overrides: Any) -> Hookline:
        return cls(get_settings(**overrides))

    # -- lazily built pieces ----------------------------------------------------------
    @cached_property
    def engine(self) -> Engine:
        return create_engine_for(self.settings)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def catalogue(self) -> Catalogue:
        return default_catalogue(self.settings.extra_event_types)

    @cached_property
    def sender(self) -> TaskSender:
        if self._sender is None:
            from workers.celery_app import create_celery_app

            ensure_embedded_redis(self.settings)
            self._sender = create_celery_app(self.settings)
        return self._sender

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.sender, partitions=self.settings.partitions,
                          task_batch=self.settings.task_batch)

    @cached_property
    def subscriber_cache(self) -> SubscriberCache:
        return SubscriberCache()

    @cached_property
    def coalescer(self) -> EnqueueCoalescer:
        def park(ids: list[str]) -> None:
            with self.engine.begin() as conn:
                park_deliveries(conn, ids)

        return EnqueueCoalescer(self.dispatcher, park)

    @cached_property
    def egress_policy(self) -> EgressPolicy:
        return egress_policy_from(self.settings)

    @cached_property
    def transport(self) -> Transport | BatchSender:
        """How attempts leave: an :class:`AsyncSender` (one event loop per process)."""
        if self._transport is not None:
            return self._transport
        s = self.settings
        return AsyncSender(user_agent=s.user_agent, excerpt_bytes=s.response_excerpt_bytes,
                           policy=self.egress_policy, proxy=s.egress_proxy,
                           per_endpoint=s.endpoint_concurrency, slot_wait=s.slot_wait)

    @cached_property
    def deliveries(self) -> DeliveryEngine:
        return DeliveryEngine(self.settings, self.engine, self.transport, catalogue=self.catalogue)

    @cached_property
    def broker_client(self) -> redis.Redis:
        """A Redis client on the broker (Redis brokers only; see :attr:`broker`)."""
        return redis.Redis.from_url(self.settings.resolved_broker_url, socket_timeout=5,
                                    socket_connect_timeout=5)

    @cached_property
    def broker(self) -> Broker:
        """Readiness, queue lengths and the reset marker, on either broker (:mod:`app.brokers`)."""
        if self.settings.broker_kind == "amqp":
            from workers.celery_app import hookline_queues

            return AmqpBroker(self.settings.resolved_broker_url, hookline_queues(self.settings))
        peekable = self.settings.resolved_broker_url.startswith(("redis://", "rediss://", "unix://"))
        return RedisBroker(self.broker_client, self.settings.broker_key_prefix, peekable=peekable)

    @cached_property
    def sweeper(self) -> Sweeper:
        return Sweeper(self.settings, self.sessions, self.dispatcher, self.broker,
                       self.broker.horizons())

    def after_fork(self) -> None:
        """Drop connections and the sender's event loop inherited from a parent process."""
        if "engine" in self.__dict__:
            self.engine.dispose(close=False)
        for name in ("deliveries", "transport", "coalescer"):
            self.__dict__.pop(name, None)

    def close(self) -> None:
        if "coalescer" in self.__dict__:
            self.coalescer.close()
        if "deliveries" in self.__dict__:
            self.deliveries.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "broker_client" in self.__dict__:
            self.broker_client.close()

    # -- the producer API -------------------------------------------------------------
    def publish(self, tenant: str, event_type: str, data: Any, *,
                occurred_at: datetime | None = None,
                idempotency_key: str | None = None,
                environment: str = "production",
                webhook_url: str | None = None,
                webhook_secret: str | None = None,
                endpoint_ids: Sequence[str] | None = None,
                ordering_key: str | None = None) -> PublishResult:
        """Record *event_type* for *tenant* with payload *data* and deliver it to subscribers.

        *webhook_url* sends it to that one-off destination instead (checked against the
        egress policy), signed with *webhook_secret* or a new secret of its own;
        *endpoint_ids* to exactly those endpoints. *ordering_key* names the entity the
        event is about (:mod:`app.ordering`): a sequence number, and ordered delivery to
        endpoints that ask for it.
        """
        if webhook_url is not None:
            webhook_url = validate_endpoint_url(webhook_url, self.egress_policy)
        return publish(self.sessions, self.dispatcher, self.catalogue, tenant=tenant,
                       event_type=event_type, data=data,
                       max_payload_bytes=self.settings.max_payload_bytes,
                       occurred_at=occurred_at, idempotency_key=idempotency_key,
                       environment=environment, webhook_url=webhook_url,
                       webhook_secret=webhook_secret,
                       endpoint_ids=endpoint_ids, cache=self.subscriber_cache,
                       enqueue=self.coalescer.submit, ordering_key=ordering_key)

    def publish_many(self, tenant: str, items: Sequence[Mapping[str, Any]], *,
                     environment: str = "production") -> BatchResult:
        """Record up to 1,000 events for *tenant* in one transaction and deliver them.

        Each item: ``{"event_type", "data", "idempotency_key"?, "ordering_key"?,
        "occurred_at"?}``. Every
        item is validated like :meth:`publish`; bad items are reported in their result
        (index, field, message) and the good ones are written (:mod:`app.fanout`).
        """
        return publish_many(self.engine, self.dispatcher, self.catalogue,
                            self.subscriber_cache, tenant=tenant, items=items,
                            max_payload_bytes=self.settings.max_payload_bytes,
                            environment=environment)
