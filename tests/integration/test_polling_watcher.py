"""Polling watchers in a real producer process: a table Hookline does not write, through a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import insert, update

from app.receiver import Receiver
from tests.changefeed_domain import legacy_audit, legacy_crew
from tests.integration.conftest import Stack
from tests.integration.producers import (
    Producers,
    outbox_states,
    partner,
    producers_for,
    reset_change_feed_tables,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

WATCHERS = ["--watchers", "tests.integration.changefeed_watchers:WATCHES"]


@pytest.fixture(autouse=True)
def _tables(stack: Stack) -> None:
    reset_change_feed_tables(stack)


@pytest.fixture
def producers(stack: Stack) -> Iterator[Producers]:
    yield from producers_for(stack)


def write(stack: Stack, statement: Any, rows: list[dict[str, Any]] | None = None) -> None:
    """As the other system would: plain SQL, its own transaction."""
    with stack.hookline.engine.begin() as connection:
        connection.execute(statement, rows) if rows is not None else connection.execute(statement)


def primed(stack: Stack) -> int:
    """Watchers whose first pass has committed: rows written from now on are news."""
    return int(stack.sql("SELECT count(*) FROM watcher_positions "
                         "WHERE (position->>'primed')::boolean")[0][0])


def received(receiver: Receiver, path: str) -> list[tuple[str, str]]:
    """``(event type, data as JSON)`` of every accepted delivery on *path*, sorted."""
    return sorted((e["event_type"], json.dumps(e["data"], sort_keys=True)) for e in
                  (json.loads(r.body) for r in receiver.for_path(path) if r.status == 200))


def crew_event(crew_id: int, new: str, old: str | None) -> tuple[str, str]:
    return ("crew.status.changed", json.dumps(
        {"crew_id": crew_id, "status": new, "changes": {"status": {"old": old, "new": new}}}, sort_keys=True))


def audit_event(seq: int, action: str) -> tuple[str, str]:
    return ("crew.profile.updated", json.dumps({"seq": seq, "action": action, "changes": {}}, sort_keys=True))


class TestPollingWatcher:
    """Inserts and watched changes become events once each, across a SIGKILL and a restart."""

    def test_a_restarted_watcher_neither_replays_nor_skips(self, stack: Stack, receiver: Receiver,
                                                           producers: Producers) -> None:
        partner(stack, receiver, "acme")
        partner(stack, receiver, "globex")
        write(stack, insert(legacy_crew), [{"id": n, "partner": "acme", "status": "new"} for n in (1, 2, 3)])
        write(stack, insert(legacy_audit), [{"partner": "acme", "action": "before"}])
        stack.worker()

        first = producers.start(*WATCHERS)
        wait_until(lambda: primed(stack) == 2, what="the first passes to record the existing rows")
        assert len(stack.sql("SELECT 1 FROM watcher_rows")) == 3 and outbox_states(stack) == {}
        write(stack, insert(legacy_crew), [{"id": 4, "partner": "acme", "status": "checking"}])
        write(stack, update(legacy_crew).where(legacy_crew.c.id == 1).values(status="verified"))
        write(stack, update(legacy_crew).where(legacy_crew.c.id == 2).values(phone="+44 1", version=2))
        write(stack, insert(legacy_audit), [{"partner": "acme", "action": "login"},
                                            {"partner": "globex", "action": "export"}])
        before = {"/acme": [crew_event(1, "verified", "new"), crew_event(4, "checking", None),
                            audit_event(2, "login")],
                  "/globex": [audit_event(3, "export")]}
        wait_until(lambda: all(len(received(receiver, p)) == len(e) for p, e in before.items()),
                   what="the deliveries before the restart")
        assert {p: received(receiver, p) for p in before} == {p: sorted(e) for p, e in before.items()}

        first.kill()
        # While no watcher runs: an insert, a change twice over, a change of an old row,
        # an unwatched change, and more audit rows than one page.
        write(stack, insert(legacy_crew), [{"id": 5, "partner": "globex", "status": "new"}])
        write(stack, update(legacy_crew).where(legacy_crew.c.id == 3).values(status="verified"))
        write(stack, update(legacy_crew).where(legacy_crew.c.id == 1).values(status="expired"))
        write(stack, update(legacy_crew).where(legacy_crew.c.id == 4).values(phone="+44 2"))
        write(stack, insert(legacy_audit), [{"partner": p, "action": a} for p, a in [
            ("acme", "a1"), ("globex", "g1"), ("acme", "a2"), ("globex", "g2")]])

        producers.start(*WATCHERS)
        after = {"/acme": sorted([*before["/acme"], crew_event(3, "verified", "new"),
                                  crew_event(1, "expired", "verified"), audit_event(4, "a1"),
                                  audit_event(6, "a2")]),
                 "/globex": sorted([*before["/globex"], crew_event(5, "new", None), audit_event(5, "g1"),
                                    audit_event(7, "g2")])}
        wait_until(lambda: all(len(received(receiver, p)) >= len(e) for p, e in after.items()),
                   what="the deliveries after the restart")
        wait_until(lambda: outbox_states(stack) == {"relayed": 11}, what="11 relayed outbox rows")
        assert {p: received(receiver, p) for p in after} == after
        assert receiver.duplicates == 0
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 11
        positions = dict(stack.sql("SELECT name, position FROM watcher_positions"))
        assert positions["legacy-audit"]["cursor"] == {"t": "int", "v": 7}
        assert positions["legacy-crew"]["primed"] is True

    def test_a_watcher_killed_mid_pass_resumes_at_its_last_page(self, stack: Stack, receiver: Receiver,
                                                                producers: Producers) -> None:
        partner(stack, receiver, "acme")
        first = producers.start(*WATCHERS)
        wait_until(lambda: primed(stack) == 2, what="the watchers' first (empty) passes")
        write(stack, insert(legacy_crew), [{"id": n, "partner": "acme", "status": "new"}
                                           for n in range(1, 601)])  # 300 pages of 2
        wait_until(lambda: len(stack.sql("SELECT 1 FROM outbox")) >= 60, interval=0.01,
                   what="the watcher to be part-way through the table")
        first.kill()
        at_kill = len(stack.sql("SELECT 1 FROM outbox"))
        assert 0 < at_kill < 600
        assert len(stack.sql("SELECT 1 FROM watcher_rows")) == at_kill  # digests commit with their rows

        producers.start(*WATCHERS)
        wait_until(lambda: outbox_states(stack) == {"relayed": 600}, what="600 relayed rows")
        per_row = stack.sql("SELECT payload->>'crew_id', count(*) FROM outbox GROUP BY 1")
        assert len(per_row) == 600 and {n for _, n in per_row} == {1}
        assert stack.sql("SELECT count(*) FROM events")[0][0] == 600
