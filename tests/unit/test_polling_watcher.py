"""Polling watchers: inserts and watched-column changes of tables Hookline does not write."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, String, column, create_engine, delete, insert, select, text, update

from app.changefeed import OutboxEntry, OutboxState, PollingWatch, PollingWatcher, Position
from app.changefeed.models import WatcherRow
from app.db import transaction
from app.errors import InvalidWatch, UnknownEventType
from tests.changefeed_domain import create_domain_tables, legacy_audit, legacy_crew, legacy_metadata
from tests.unit.conftest import Harness


def crew_watch(**options: Any) -> PollingWatch:
    """Status changes of the legacy crew table, for the partner named in the row."""
    defaults: dict[str, Any] = {
        "name": "legacy-crew", "query": legacy_crew, "key": "id", "columns": ["status"],
        "fields": {"crew_id": "id", "status": "status"}, "event_type": "crew.status.changed",
        "recipients": lambda _session, row: [row["partner"]],
    }
    defaults.update(options)
    return PollingWatch(**defaults)


class Legacy:
    """A harness with the legacy tables, written directly as another system would."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        create_domain_tables(h.engine)

    def watcher(self, **options: Any) -> PollingWatcher:
        return PollingWatcher(crew_watch(**options), self.h.sessions, self.h.catalogue,
                              max_payload_bytes=self.h.settings.max_payload_bytes)

    def insert(self, *rows: dict[str, Any]) -> None:
        with self.h.engine.begin() as connection:
            connection.execute(insert(legacy_crew), [{"partner": "acme", "status": "new", **r} for r in rows])

    def update(self, row_id: int, **values: Any) -> None:
        with self.h.engine.begin() as connection:
            connection.execute(update(legacy_crew).where(legacy_crew.c.id == row_id).values(**values))

    def outbox(self) -> list[OutboxEntry]:
        with transaction(self.h.sessions) as session:
            return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))

    def emitted(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r.event_type, r.payload) for r in self.outbox()]


@pytest.fixture
def legacy(harness: Harness) -> Legacy:
    return Legacy(harness)


def change(crew_id: int, status: str, old: str | None) -> dict[str, Any]:
    return {"crew_id": crew_id, "status": status, "changes": {"status": {"old": old, "new": status}}}


class TestFullScan:
    """Without a cursor every pass compares each row's watched columns with what was stored."""

    def test_the_first_pass_records_what_exists_without_emitting(self, legacy: Legacy) -> None:
        legacy.insert({"id": 1}, {"id": 2})
        watcher = legacy.watcher()
        report = watcher.poll()
        assert (report.rows, report.emitted, report.caught_up) == (2, 0, True)
        assert legacy.outbox() == []
        assert watcher.position() == Position(None, None, primed=True)

    def test_inserts_and_watched_changes_emit_and_nothing_else_does(self, legacy: Legacy) -> None:
        legacy.insert({"id": 1}, {"id": 2})
        watcher = legacy.watcher()
        watcher.poll()
        legacy.insert({"id": 3, "status": "checking"})
        legacy.update(1, status="verified")
        legacy.update(2, phone="+44 1", version=7)  # unwatched columns only
        watcher.poll()
        assert legacy.emitted() == [("crew.status.changed", change(1, "verified", "new")),
                                    ("crew.status.changed", change(3, "checking", None))]
        assert watcher.poll().emitted == 0  # nothing new: nothing again
        [first, _third] = legacy.outbox()
        assert (first.tenant_ref, first.source, first.state) == ("acme", "poll:legacy-crew",
                                                                  OutboxState.PENDING)

    def test_a_restart_neither_replays_nor_skips(self, legacy: Legacy) -> None:
        legacy.insert({"id": 1})
        legacy.watcher().poll()
        legacy.insert({"id": 2})
        legacy.watcher().poll()  # a first process: sees row 2
        legacy.insert({"id": 3})
        legacy.update(1, status="verified")  # while no watcher runs
        legacy.watcher().poll()  # a second process, fresh objects, same name
        legacy.watcher().poll()
        assert [p["crew_id"] for _, p in legacy.emitted()] == [2, 1, 3]

    def test_pages_resume_mid_pass_after_a_restart(self, legacy: Legacy) -> None:
        legacy.insert(*({"id": n} for n in range(1, 6)))
        legacy.watcher(batch=2).poll()
        for n in range(1, 6):
            legacy.update(n, status="verified")
        first = legacy.watcher(batch=2).poll(max_pages=1)
        assert (first.pages, first.emitted, first.caught_up) == (1, 2, False)
        assert legacy.watcher(batch=2).position().key == 2
        rest = legacy.watcher(batch=2).poll()
        assert (rest.pages, rest.emitted, rest.caught_up) == (2, 3, True)
        assert [p["crew_id"] for _, p in legacy.emitted()] == [1, 2, 3, 4, 5]

    def test_backfill_emits_the_rows_that_were_there_first(self, legacy: Legacy) -> None:
        legacy.insert({"id": 1}, {"id": 2})
        assert legacy.watcher(backfill=True).poll().emitted == 2
        assert [p["changes"]["status"] for _, p in legacy.emitted()] == [{"old": None, "new": "new"}] * 2

    def test_updates_only_records_inserts_silently(self, legacy: Legacy) -> None:
        watcher = legacy.watcher(on=["update"])
        watcher.poll()
        legacy.insert({"id": 1})
        watcher.poll()
        legacy.update(1, status="verified")
        watcher.poll()
        assert legacy.emitted() == [("crew.status.changed", change(1, "verified", "new"))]

    def test_an_event_type_per_operation_and_recipients_from_the_row(self, legacy: Legacy) -> None:
        watcher = legacy.watcher(event_type={"insert": "crew.profile.updated",
                                             "update": "crew.status.changed"})
        watcher.poll()
        legacy.insert({"id": 1, "partner": "globex"})
        watcher.poll()
        legacy.update(1, status="verified")
        watcher.poll()
        assert [(r.event_type, r.tenant_ref) for r in legacy.outbox()] == [
            ("crew.profile.updated", "globex"), ("crew.status.changed", "globex")]

    def test_a_query_may_be_watched_instead_of_a_table(self, legacy: Legacy) -> None:
        active = select(legacy_crew).where(legacy_crew.c.partner == "acme")
        watcher = legacy.watcher(query=active)
        watcher.poll()
        legacy.insert({"id": 1}, {"id": 2, "partner": "globex"})
        watcher.poll()
        assert [p["crew_id"] for _, p in legacy.emitted()] == [1]

    def test_raw_sql_with_declared_columns(self, legacy: Legacy) -> None:
        query = text("SELECT id, partner, status FROM cf_legacy_crew").columns(
            column("id", Integer), column("partner", String), column("status", String))
        watcher = legacy.watcher(query=query)
        watcher.poll()
        legacy.insert({"id": 4})
        watcher.poll()
        assert legacy.emitted() == [("crew.status.changed", change(4, "new", None))]

    def test_deleted_rows_are_not_reported(self, legacy: Legacy) -> None:
        legacy.insert({"id": 1})
        watcher = legacy.watcher()
        watcher.poll()
        with legacy.h.engine.begin() as connection:
            connection.execute(delete(legacy_crew))
        watcher.poll()
        assert legacy.emitted() == []


class TestCursor:
    """With a cursor each pass reads only rows past the stored position."""

    def test_a_version_bump_without_a_watched_change_emits_nothing(self, legacy: Legacy) -> None:
        legacy.insert({"id": 1, "version": 1}, {"id": 2, "version": 1})
        watcher = legacy.watcher(cursor="version")
        watcher.poll()
        legacy.update(1, version=2, phone="+44 1")
        legacy.update(2, version=3, status="verified")
        legacy.insert({"id": 3, "version": 4})
        report = watcher.poll()
        assert report.rows == 3  # only the rows past the position were read
        assert legacy.emitted() == [("crew.status.changed", change(2, "verified", "new")),
                                    ("crew.status.changed", change(3, "new", None))]
        assert watcher.position() == Position(4, 3, primed=True)

    def test_a_change_below_the_position_is_never_read(self, legacy: Legacy) -> None:
        """Documented limit: the cursor must grow in commit order."""
        legacy.insert({"id": 1, "version": 5})
        watcher = legacy.watcher(cursor="version")
        watcher.poll()
        legacy.update(1, status="verified")  # the version was not bumped
        assert watcher.poll().rows == 0
        assert legacy.emitted() == []

    def test_an_append_only_feed_needs_no_per_row_state(self, legacy: Legacy) -> None:
        audit = PollingWatcher(PollingWatch(
            name="audit", query=legacy_audit, key="seq", cursor="seq", track_changes=False,
            fields=["seq", "action", "at"], event_type="crew.profile.updated",
            recipients=lambda _s, row: [row["partner"]]), legacy.h.sessions, legacy.h.catalogue,
            max_payload_bytes=legacy.h.settings.max_payload_bytes)
        with legacy.h.engine.begin() as connection:
            connection.execute(insert(legacy_audit), [{"partner": "acme", "action": "before"}])
        audit.poll()
        with legacy.h.engine.begin() as connection:
            connection.execute(insert(legacy_audit), [
                {"partner": "acme", "action": "login", "at": datetime(2030, 1, 1, 9)},
                {"partner": "globex", "action": "logout", "at": None}])
        audit.poll()
        assert [(r.tenant_ref, r.payload) for r in legacy.outbox()] == [
            ("acme", {"seq": 2, "action": "login", "at": "2030-01-01T09:00:00Z", "changes": {}}),
            ("globex", {"seq": 3, "action": "logout", "at": None, "changes": {}})]
        assert legacy.h.count(WatcherRow) == 0


class TestElsewhere:
    """A watcher can read another database; its position stays in Hookline's."""

    def test_the_source_may_be_another_engine(self, legacy: Legacy, tmp_path: Path) -> None:
        other: Engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
        legacy_metadata.create_all(other)
        with other.begin() as connection:
            connection.execute(insert(legacy_crew), [{"id": 1, "partner": "acme", "status": "new"}])
        watcher = legacy.watcher(source=other)
        watcher.poll()
        with other.begin() as connection:
            connection.execute(update(legacy_crew).values(status="verified"))
        watcher.poll()
        assert legacy.emitted() == [("crew.status.changed", change(1, "verified", "new"))]
        other.dispose()


class TestDeclaration:
    """A polling watch that cannot work is refused when declared or loaded."""

    @pytest.mark.parametrize(("options", "message"), [
        ({"columns": ["nope"]}, "no column"),
        ({"fields": {"x": "nope"}}, "no column"),
        ({"cursor": "nope"}, "no column"),
        ({"track_changes": False}, "needs a cursor"),
        ({"track_changes": False, "cursor": "version", "on": ["insert", "update"]}, "inserts only"),
        ({"name": ""}, "name"),
        ({"batch": 0}, "batch"),
        ({"interval": 0}, "interval"),
        ({"columns": []}, "needs the attributes"),
    ])
    def test_refused(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidWatch, match=message):
            crew_watch(**options)

    def test_an_unknown_event_type_is_refused_when_loaded(self, legacy: Legacy) -> None:
        with pytest.raises(UnknownEventType):
            legacy.watcher(event_type="crew.status.imploded")

    def test_defaults(self) -> None:
        watch = crew_watch()
        assert set(watch.event_types) == {"insert", "update"}
        assert (watch.interval, watch.batch, watch.backfill, watch.cursor) == (5.0, 500, False, None)
