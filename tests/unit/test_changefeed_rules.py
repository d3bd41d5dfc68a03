"""Watch rules, values and detection: the pure core of the change feed."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.changefeed.detection import Position, Seen, advance, detect, key_text
from app.changefeed.rules import Change, Watch, default_payload, make_change, tenants_of
from app.changefeed.values import canonical, digest, jsonable, tag, untag
from app.errors import InvalidWatch
from tests.changefeed_domain import CrewMember


def anyone(_session: Any, _subject: Any) -> list[str]:
    return ["acme"]


class Colour(enum.Enum):
    RED = "red"


class TestJsonable:
    """Column values become the JSON a payload carries, without losing precision."""

    @pytest.mark.parametrize(("given", "expected"), [
        (datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "2030-01-02T03:04:05Z"),
        (datetime(2030, 1, 2, 3, 4, 5, 123000), "2030-01-02T03:04:05.123000Z"),
        (date(2030, 1, 2), "2030-01-02"),
        (Decimal("4.10"), "4.10"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Colour.RED, "red"),
        ((1, "a"), [1, "a"]),
        ({"k": Decimal("1")}, {"k": "1"}),
        (None, None),
    ])
    def test_known_types(self, given: Any, expected: Any) -> None:
        assert jsonable(given) == expected

    @pytest.mark.parametrize("given", [b"bytes", object(), float("nan")])
    def test_a_value_with_no_json_form_is_refused(self, given: Any) -> None:
        with pytest.raises(TypeError):
            jsonable(given)

    def test_equal_data_has_equal_digests_whatever_the_key_order(self) -> None:
        assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
        assert digest({"a": 1}) != digest({"a": "1"})
        assert canonical(1) != canonical("1")


class TestTaggedValues:
    """A cursor or key survives the trip through JSON with its type."""

    @pytest.mark.parametrize("value", [7, 2.5, "k", Decimal("1.50"), date(2030, 1, 1),
                                       datetime(2030, 1, 1, 12, tzinfo=UTC), datetime(2030, 1, 1, 12)])
    def test_round_trip(self, value: Any) -> None:
        assert untag(tag(value)) == value
        assert type(untag(tag(value))) is type(value)

    def test_none_stays_none_and_booleans_are_refused(self) -> None:
        assert tag(None) is None and untag(None) is None
        with pytest.raises(TypeError):
            tag(True)


class TestMakeChange:
    """A change reports every watched value on insert and delete, only the changed ones on update."""

    def test_update_keeps_only_watched_values_that_changed(self) -> None:
        change = make_change("update", "orm:Crew", watched=["status", "rank"], values={"id": "c1"},
                             old={"status": "pending", "rank": 2}, new={"status": "verified", "rank": 2})
        assert change == Change("update", "orm:Crew", {"id": "c1"}, {"status": ("pending", "verified")})

    def test_an_update_that_changes_no_watched_value_is_no_change(self) -> None:
        assert make_change("update", "s", watched=["status"], values={},
                           old={"status": Decimal("1.0")}, new={"status": Decimal("1.0")}) is None

    def test_insert_and_delete_report_every_watched_value(self) -> None:
        inserted = make_change("insert", "s", watched=["status"], values={}, new={"status": "new"})
        deleted = make_change("delete", "s", watched=["status"], values={}, old={"status": "gone"})
        assert inserted is not None and inserted.changes == {"status": (None, "new")}
        assert deleted is not None and deleted.changes == {"status": ("gone", None)}

    def test_values_are_made_json_ready(self) -> None:
        change = make_change("insert", "s", watched=[], values={"at": datetime(2030, 1, 1, tzinfo=UTC)})
        assert change is not None and change.values == {"at": "2030-01-01T00:00:00Z"}

    def test_the_default_payload_is_the_allow_list_plus_old_and_new(self) -> None:
        change = Change("update", "s", {"crew_id": "c1"}, {"status": ("a", "b")})
        assert default_payload(change) == {"crew_id": "c1",
                                           "changes": {"status": {"old": "a", "new": "b"}}}
        assert (change.old("status"), change.new("status"), change.new("other")) == ("a", "b", None)


class TestRecipients:
    """Recipients name tenants; duplicates collapse and strings are not mistaken for lists."""

    def test_duplicates_collapse_in_order(self) -> None:
        assert tenants_of(lambda s, o: ["b", "a", "b"], None, None) == ["b", "a"]  # type: ignore[arg-type]
        assert tenants_of(["x"], None, None) == ["x"]  # type: ignore[arg-type]
        assert tenants_of(lambda s, o: [], None, None) == []  # type: ignore[arg-type]

    @pytest.mark.parametrize("returned", ["acme", [""], [None]])
    def test_a_bad_answer_is_an_error(self, returned: Any) -> None:
        with pytest.raises(TypeError):
            tenants_of(lambda s, o: returned, None, None)  # type: ignore[arg-type]


class TestWatchDeclaration:
    """Declarations that cannot work are refused when declared."""

    def test_one_event_type_defaults_to_updates(self) -> None:
        watch = Watch(model=CrewMember, attributes=["status"], event_type="crew.status.changed",
                      recipients=anyone)
        assert dict(watch.event_types) == {"update": "crew.status.changed"}
        assert watch.source == "orm:CrewMember"

    def test_an_event_type_per_operation(self) -> None:
        watch = Watch(model=CrewMember, attributes=["status"], recipients=anyone,
                      event_type={"insert": "crew.profile.updated", "update": "crew.status.changed"})
        assert dict(watch.event_types) == {"insert": "crew.profile.updated",
                                           "update": "crew.status.changed"}

    def test_fields_may_rename(self) -> None:
        watch = Watch(model=CrewMember, attributes=["status"], event_type="crew.status.changed",
                      recipients=anyone, fields={"crew_id": "id"})
        assert dict(watch.field_map) == {"crew_id": "id"}

    @pytest.mark.parametrize(("options", "message"), [
        ({"event_type": "crew.status.changed"}, "needs the attributes"),
        ({"event_type": "crew.status.changed", "attributes": ["status"], "on": ["upsert"]},
         "unknown operation"),
        ({"event_type": "not an event", "attributes": ["status"]}, "malformed event type"),
        ({"event_type": "crew.status.changed", "attributes": ["status"], "fields": ["changes"]},
         "reserved"),
        ({"event_type": "crew.status.changed", "attributes": ["status"], "fields": "id"},
         "not the string"),
        ({"event_type": "crew.status.changed", "attributes": ["status"], "on": []},
         "at least one operation"),
        ({"event_type": {"update": "crew.status.changed"}, "attributes": ["status"], "on": ["insert"]},
         "leave on out"),
    ])
    def test_refused(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidWatch, match=message):
            Watch(model=CrewMember, recipients=anyone, **options)

    def test_recipients_must_be_a_callable_or_a_list(self) -> None:
        with pytest.raises(InvalidWatch, match="recipients"):
            Watch(model=CrewMember, attributes=["status"], event_type="crew.status.changed",
                  recipients="acme")

    def test_when_and_payload_shape_the_emission(self) -> None:
        watch = Watch(model=CrewMember, attributes=["status"], event_type="crew.status.changed",
                      recipients=anyone, when=lambda c: c.new("status") == "verified",
                      payload=lambda c: {"status": c.new("status"), "was": c.old("status")})
        verified = Change("update", "s", {}, {"status": ("pending", "verified")})
        rejected = Change("update", "s", {}, {"status": ("pending", "rejected")})
        emitted = watch.emission(verified)
        assert emitted is not None
        assert (emitted.event_type, emitted.payload) == ("crew.status.changed",
                                                        {"status": "verified", "was": "pending"})
        assert watch.emission(rejected) is None
        assert watch.emission(Change("insert", "s", {}, {})) is None


class TestDetection:
    """New keys are inserts, a different digest of the watched columns is an update, the rest is silence."""

    def stored(self, key: Any, watched: dict[str, Any]) -> dict[str, Seen]:
        return {key_text(key): Seen(digest(watched), watched)}

    def test_insert_update_and_silence(self) -> None:
        rows = [{"id": 1, "status": "a", "phone": "x"}, {"id": 2, "status": "b", "phone": "y"},
                {"id": 3, "status": "c", "phone": "new"}]
        stored = {**self.stored(2, {"status": "old"}), **self.stored(3, {"status": "c"})}
        found = detect(rows, key="id", columns=["status"], stored=stored)
        assert [(c.row["id"], c.operation, c.old, c.new) for c in found] == [
            (1, "insert", None, {"status": "a"}),
            (2, "update", {"status": "old"}, {"status": "b"}),
        ]

    def test_a_key_seen_twice_in_one_page_compares_with_itself(self) -> None:
        rows = [{"id": 1, "status": "a"}, {"id": 1, "status": "a"}, {"id": 1, "status": "b"}]
        found = detect(rows, key="id", columns=["status"], stored={})
        assert [(c.operation, dict(c.new)) for c in found] == [("insert", {"status": "a"}),
                                                               ("update", {"status": "b"})]

    def test_untracked_rows_are_all_inserts(self) -> None:
        found = detect([{"seq": 1}, {"seq": 2}], key="seq", columns=[], stored={}, track=False)
        assert [c.operation for c in found] == ["insert", "insert"]


class TestPosition:
    """The position moves past the page read, and a short page ends a pass."""

    def test_cursor_mode_resumes_after_the_last_row(self) -> None:
        rows = [{"v": 3, "id": 1}, {"v": 5, "id": 9}]
        assert advance(Position(), rows, key="id", cursor="v", page_size=2) == Position(5, 9, False)
        assert advance(Position(5, 9), rows[:1], key="id", cursor="v", page_size=2) == Position(3, 1, True)
        assert advance(Position(5, 9), [], key="id", cursor="v", page_size=2) == Position(5, 9, True)

    def test_full_scan_wraps_after_a_short_page(self) -> None:
        rows = [{"id": 1}, {"id": 2}]
        assert advance(Position(), rows, key="id", cursor=None, page_size=2) == Position(None, 2, False)
        assert advance(Position(None, 2), rows[:1], key="id", cursor=None, page_size=2) == Position(
            None, None, True)

    def test_round_trip_through_json(self) -> None:
        position = Position(datetime(2030, 1, 1, tzinfo=UTC), "k1", True)
        assert Position.from_json(position.to_json()) == position
        assert Position.from_json(None) == Position()
