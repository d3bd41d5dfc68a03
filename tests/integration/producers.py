"""Helpers for the change-feed integration tests: real ``hookline producer`` processes and partners."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app import admin
from app.changefeed import ChangeFeed
from app.changefeed.producer import READY_MESSAGE
from app.receiver import Receiver, Route
from tests.changefeed_domain import create_domain_tables
from tests.integration.conftest import ChildProcess, Stack
from tests.support import crewpass_signature_ok

CHANGE_FEED_TABLES = ("outbox", "watcher_positions", "watcher_rows", "cf_partner_links", "cf_crew",
                      "cf_legacy_crew", "cf_legacy_audit")


class ProducerProcess(ChildProcess):
    """``hookline producer …``."""

    command = ("producer",)
    ready_marker = READY_MESSAGE.encode()
    ready_timeout = 20.0

    def relayed_counts(self) -> list[int]:
        """The row counts this producer logged, one per batch it committed."""
        return [int(n) for n in re.findall(r"relayed (\d+) outbox row", self.text())]


class Producers:
    """Starts producers for one stack and stops every one of them at the end of the test."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.started: list[ProducerProcess] = []

    def start(self, *args: str, name: str | None = None) -> ProducerProcess:
        process = ProducerProcess(self.stack, name or f"producer{len(self.started)}", list(args))
        self.started.append(process)
        return process.start()

    def close(self) -> None:
        for process in self.started:
            if process.alive():
                process.stop()


def producers_for(stack: Stack) -> Iterator[Producers]:
    running = Producers(stack)
    yield running
    running.close()


def reset_change_feed_tables(stack: Stack) -> None:
    """The stand-in domain's tables exist and, like the change-feed tables, are empty."""
    create_domain_tables(stack.hookline.engine)
    with stack.hookline.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(CHANGE_FEED_TABLES)} RESTART IDENTITY CASCADE"))


def partner(stack: Stack, receiver: Receiver, name: str, events: tuple[str, ...] = ("*",)) -> str:
    """Tenant *name* with an endpoint on the receiver's ``/<name>`` that checks signatures; its id."""
    tenant = admin.create_tenant(stack.hookline.sessions, name)
    created = admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue, tenant=name,
                                 url=receiver.url(f"/{name}"), events=list(events),
                                 policy=stack.hookline.egress_policy)
    secret = created.secret
    receiver.route(f"/{name}",
                   Route(verify=lambda headers, body: crewpass_signature_ok(secret, headers, body)))
    return tenant.id


def domain_sessions(stack: Stack, feed: ChangeFeed) -> sessionmaker[Session]:
    """An application's own session factory (expire on commit, as usual) with the feed installed."""
    factory = sessionmaker(stack.hookline.engine)
    feed.install(factory)
    return factory


def delivered(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """The envelopes accepted on *path*, in arrival order."""
    return [json.loads(r.body) for r in receiver.for_path(path) if 200 <= r.status < 300]


def outbox_states(stack: Stack) -> dict[str, int]:
    return {str(state): int(n) for state, n in
            stack.sql("SELECT state, count(*) FROM outbox GROUP BY state")}
