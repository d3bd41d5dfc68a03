"""Ordered delivery per key: hold back, release, and the sweeper's net. SQL only.

For an endpoint with ``ordering = key`` each delivery carries its event's ordering key
and a *position* (the event's sequence number). The rule is one test, made by the
claim itself (:mod:`app.engine.claim`): a delivery is taken only if no earlier delivery
of the same endpoint and key is unfinished (``pending``, ``in_flight`` or
``retry_scheduled``). So delivery N+1 is not sent before N has succeeded or been
dead-lettered; a retrying N holds back only its own key; other keys go on.

The three moves around that test:

* :func:`hold_back` — in the claim's transaction, a due delivery the test refused is
  marked ``blocked`` with no message (``queued_at`` NULL): it waits in SQL, not on the
  broker, and no sweeper step re-sends it while it waits.
* :func:`release_next` — after a batch's record commits, for each key whose delivery
  finished (succeeded or dead) the next claimable delivery of that key is unblocked and
  given a message (a follow-up of :mod:`app.engine.schedule`). A duplicate message is
  harmless: the claim takes a row only once.
* :func:`release_stranded` — the sweeper's step: a blocked delivery with no earlier
  unfinished one (its head finished on a path that releases nothing, such as a lost
  worker's last attempt, or a worker died between record and release) is unblocked
  and left to the sweeper's "parked and due" step, which sends it when due.

Cost: per key, one row in ``ordering_sequences``; per unfinished ordered delivery, one
entry in the partial index ``ix_deliveries_ordering`` (finished ones leave it); per
finished head, one release statement shared by the batch. Redis holds nothing per key:
a blocked delivery has no message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    Table,
    bindparam,
    exists,
    or_,
    text,
    true,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from app.engine.schedule import ScheduledRetry
from app.models import Delivery, UTCDateTime

log = logging.getLogger(__name__)

#: The unfinished states, as SQL literals: the partial index's predicate must be provable
#: from the query's, which needs constants, not parameters.
_UNFINISHED_SQL = "('pending', 'in_flight', 'retry_scheduled')"
_CLAIMABLE_SQL = "('pending', 'retry_scheduled')"


def _table() -> Table:
    table = Delivery.__table__
    assert isinstance(table, Table)
    return table


def waiting_behind(table: Any) -> Any:
    """SQL: an earlier delivery of *table*'s row's endpoint and key is unfinished."""
    earlier = _table().alias("earlier")
    return exists().where(
        earlier.c.endpoint_id == table.c.endpoint_id,
        earlier.c.ordering_key == table.c.ordering_key,
        earlier.c.position < table.c.position,
        text(f"earlier.state IN {_UNFINISHED_SQL}"),
    )


def may_go(table: Any) -> Any:
    """SQL: the claim's ordering test — unordered, or nothing earlier of its key unfinished."""
    return or_(table.c.ordering_key.is_(None), ~waiting_behind(table))


@cache
def _hold_back_statement() -> Any:
    table = _table()
    return (update(table)
            .where(table.c.id.in_(bindparam("ids", expanding=True)),
                   table.c.ordering_key.is_not(None),
                   text(f"deliveries.state IN {_CLAIMABLE_SQL}"),
                   table.c.next_attempt_at <= bindparam("due"))
            # Not re-testing what the claim saw: if the earlier delivery finished since
            # (another transaction committed between the two statements), the row is
            # still marked blocked, and the sweeper's release of stranded keys sends it
            # within a sweep, rather than it waiting, unblocked and without a message,
            # for the lost-message net.
            .values(blocked=true(), queued_at=None))


def hold_back(conn: Connection, skipped: Sequence[str], *, due: datetime) -> None:
    """Mark the due, claimable deliveries of *skipped* that wait behind an earlier one of
    their key as blocked, with no message (inside the claim's transaction)."""
    if skipped:
        conn.execute(_hold_back_statement(), {"ids": list(skipped), "due": due})


@cache
def _release_statement(heads: int) -> Any:
    keys = ", ".join(f"(:e{n}, :k{n})" for n in range(heads))
    return text(f"""
        UPDATE deliveries
        SET blocked = false, updated_at = :now,
            queued_at = CASE WHEN next_attempt_at <= :horizon THEN :now ELSE NULL END
        WHERE state IN {_CLAIMABLE_SQL} AND id IN (
            SELECT (SELECT x.id FROM deliveries x
                    WHERE x.endpoint_id = h.column1 AND x.ordering_key = h.column2
                      AND x.state IN {_CLAIMABLE_SQL}
                    ORDER BY x.position LIMIT 1)
            FROM (VALUES {keys}) AS h)
        RETURNING id, endpoint_id, next_attempt_at, queued_at""").bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("horizon", type_=UTCDateTime()),
    ).columns(id=String(), endpoint_id=String(), next_attempt_at=UTCDateTime(),
              queued_at=UTCDateTime())


def release_next(engine: Engine, heads: Sequence[tuple[str, str]], *, now: datetime,
                 countdown_max: float) -> list[ScheduledRetry]:
    """For each finished (endpoint id, ordering key) of *heads*, give its next claimable
    delivery a message: the follow-ups to send (due within *countdown_max*; a later one
    is left parked for the sweeper)."""
    distinct = sorted(set(heads))
    if not distinct:
        return []
    params: dict[str, Any] = {"now": now, "horizon": now + timedelta(seconds=countdown_max)}
    for n, (endpoint_id, key) in enumerate(distinct):
        params[f"e{n}"], params[f"k{n}"] = endpoint_id, key
    try:
        with engine.begin() as conn:
            rows = conn.execute(_release_statement(len(distinct)), params).all()
    except SQLAlchemyError as exc:
        # The outcomes are recorded; the sweeper's net releases these keys instead.
        log.warning("releasing the next delivery of %d ordering key(s) failed: %s",
                    len(distinct), exc)
        return []
    return [ScheduledRetry(row.id, row.endpoint_id,
                           max(0.0, (row.next_attempt_at - now).total_seconds()))
            for row in rows if row.queued_at is not None]


@cache
def _stranded_statement() -> Any:
    table = _table()
    return (update(table)
            .where(text("deliveries.blocked"),
                   text(f"deliveries.state IN {_CLAIMABLE_SQL}"),
                   ~waiting_behind(table))
            .values(blocked=False, queued_at=None, updated_at=bindparam("now")))


def release_stranded(conn: Connection, *, now: datetime) -> int:
    """Unblock every blocked delivery with nothing earlier of its key unfinished; the
    sweeper's "parked and due" step then sends each when due. The number released."""
    return int(conn.execute(_stranded_statement(), {"now": now}).rowcount or 0)


__all__ = ["hold_back", "may_go", "release_next", "release_stranded", "waiting_behind"]
