"""Replays: send a tenant's deliveries from a time window again, resumably (SQL, broker).

A replay is a row (``replays``) holding its filter, its window, a cursor and counts.
:func:`run_replay` walks the window in ``(created_at, id)`` order, ``replay_batch``
deliveries per transaction; in that transaction it re-arms the batch's final
deliveries (back to ``pending`` with a fresh attempt budget, as a dead-letter requeue
does), writes one ``replay_items`` row per delivery handled and moves the cursor. Only
after the commit are the re-armed ids handed to the dispatcher, so the engine sends
them like any other delivery; a message the broker refuses is parked for the sweeper.

Why it never sends a delivery twice for one replay id: the cursor moves in the
transaction that re-arms, the replay row is locked for that transaction (two runners
take turns, the second starts after the first's cursor), and ``replay_items`` has
``(replay_id, source_delivery_id)`` as its key, so a batch that would repeat one
fails whole. A runner killed after a commit but before its messages left leaves the
rows pending with ``queued_at`` set: the sweeper sends them after
``HOOKLINE_REDISPATCH_AFTER``.

A delivery whose event was pruned (:mod:`app.pruning`) is not sent: it is counted
``pruned``. Deliveries of a disabled or deleted endpoint are counted
``skipped_disabled``, those still pending, retrying or in flight ``skipped_active``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.dispatch import Dispatcher
from app.errors import UnknownEndpoint, UnknownReplay
from app.ids import new_id
from app.models import (
    FINAL_STATES,
    Delivery,
    DeliveryState,
    Endpoint,
    Event,
    Replay,
    ReplayItem,
    ReplayStatus,
    utcnow,
)
from app.publishing import enqueue_or_park, resolve_tenant
from app.replay_window import (
    Candidate,
    Cursor,
    Outcome,
    StateFilter,
    check_window,
    next_cursor,
    outcome,
    parse_state_filter,
)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    tenant: str
    since: datetime
    until: datetime | None = None
    endpoint_id: str | None = None
    event_type: str | None = None
    state: str = StateFilter.ANY


@dataclass(frozen=True, slots=True)
class ReplayCounts:
    matched: int = 0
    sent: int = 0
    pruned: int = 0
    skipped_disabled: int = 0
    skipped_active: int = 0


@dataclass(frozen=True, slots=True)
class ReplayView:
    id: str
    tenant_id: str
    status: str
    endpoint_id: str | None
    event_type: str | None
    state: str
    since: datetime
    until: datetime
    counts: ReplayCounts
    created_at: datetime
    finished_at: datetime | None


def _view(replay: Replay) -> ReplayView:
    return ReplayView(
        id=replay.id, tenant_id=replay.tenant_id, status=replay.status,
        endpoint_id=replay.endpoint_id, event_type=replay.event_type, state=replay.state_filter,
        since=replay.since, until=replay.until,
        counts=ReplayCounts(replay.matched, replay.sent, replay.pruned, replay.skipped_disabled,
                            replay.skipped_active),
        created_at=replay.created_at, finished_at=replay.finished_at)


@dataclass(frozen=True, slots=True)
class _Window:
    """A validated selection: what the walk's query filters on."""

    tenant_id: str
    since: datetime
    until: datetime
    endpoint_id: str | None
    event_type: str | None
    state: StateFilter


def _validate(session: Session, request: ReplayRequest, default_retention_days: int,
              now: datetime) -> _Window:
    tenant = resolve_tenant(session, request.tenant)
    state = parse_state_filter(request.state)
    if request.endpoint_id is not None:
        endpoint = session.get(Endpoint, request.endpoint_id)
        if endpoint is None or endpoint.tenant_id != tenant.id or endpoint.one_off:
            raise UnknownEndpoint(request.endpoint_id)
    since, until = check_window(request.since, request.until,
                                retention_days=tenant.retention_days or default_retention_days,
                                now=now)
    return _Window(tenant.id, since, until, request.endpoint_id, request.event_type, state)


def _window_of(replay: Replay) -> _Window:
    return _Window(replay.tenant_id, replay.since, replay.until, replay.endpoint_id,
                   replay.event_type, StateFilter(replay.state_filter))


def _walk(window: _Window, after: Cursor | None, limit: int | None) -> Select[
        str, str, datetime, str, datetime | None, bool, datetime | None]:
    query = (
        select(Delivery.id, Delivery.endpoint_id, Delivery.created_at, Delivery.state,
               Event.pruned_at, Endpoint.enabled, Endpoint.deleted_at)
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.tenant_id == window.tenant_id, Delivery.created_at >= window.since,
               Delivery.created_at < window.until)
        .order_by(Delivery.created_at, Delivery.id)
    )
    if window.endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == window.endpoint_id)
    if window.event_type is not None:
        query = query.where(Event.event_type == window.event_type)
    if window.state is not StateFilter.ANY:
        query = query.where(Delivery.state == window.state.value)
    if after is not None:
        query = query.where(or_(
            Delivery.created_at > after.created_at,
            and_(Delivery.created_at == after.created_at, Delivery.id > after.delivery_id)))
    if limit is not None:
        query = query.limit(limit)
    return query


def _candidates(session: Session, window: _Window, after: Cursor | None,
                limit: int) -> list[Candidate]:
    return [
        Candidate(delivery_id=d_id, endpoint_id=ep_id, created_at=created, state=state,
                  event_pruned=pruned_at is not None,
                  endpoint_live=bool(enabled) and deleted_at is None)
        for d_id, ep_id, created, state, pruned_at, enabled, deleted_at
        in session.execute(_walk(window, after, limit)).all()
    ]


def create_replay(sessions: sessionmaker[Session], request: ReplayRequest, *,
                  default_retention_days: int, clock: Callable[[], datetime] = utcnow) -> ReplayView:
    """Validate *request* and record a replay ready to run; nothing is sent yet."""
    now = clock()
    with transaction(sessions) as session:
        window = _validate(session, request, default_retention_days, now)
        replay = Replay(id=new_id("rpl"), tenant_id=window.tenant_id,
                        endpoint_id=window.endpoint_id, event_type=window.event_type,
                        state_filter=window.state.value, since=window.since, until=window.until,
                        status=ReplayStatus.RUNNING, created_at=now, updated_at=now)
        session.add(replay)
        session.flush()
        return _view(replay)


def preview(sessions: sessionmaker[Session], request: ReplayRequest, *,
            default_retention_days: int, batch: int = 1000,
            clock: Callable[[], datetime] = utcnow) -> ReplayCounts:
    """What a replay of *request* would do now (``--dry-run``); writes nothing."""
    counts = {o: 0 for o in Outcome}
    matched = 0
    with transaction(sessions) as session:
        window = _validate(session, request, default_retention_days, clock())
        cursor: Cursor | None = None
        while True:
            rows = _candidates(session, window, cursor, batch)
            for candidate in rows:
                counts[outcome(candidate)] += 1
            matched += len(rows)
            if len(rows) < batch:
                break
            cursor = next_cursor(rows, cursor)
    return ReplayCounts(matched, counts[Outcome.SENT], counts[Outcome.PRUNED],
                        counts[Outcome.SKIPPED_DISABLED], counts[Outcome.SKIPPED_ACTIVE])


def remaining(sessions: sessionmaker[Session], replay_id: str) -> int:
    """Deliveries of the replay's window it has not reached yet (for a progress bar)."""
    with transaction(sessions) as session:
        replay = session.get(Replay, replay_id)
        if replay is None:
            raise UnknownReplay(replay_id)
        after = (Cursor(replay.cursor_created_at, replay.cursor_id)
                 if replay.cursor_created_at is not None and replay.cursor_id is not None else None)
        walk = _walk(_window_of(replay), after, None).order_by(None).subquery()
        return int(session.scalar(select(func.count()).select_from(walk)) or 0)


def _load(session: Session, replay_id: str, tenant_id: str | None, *, lock: bool = False) -> Replay:
    query = select(Replay).where(Replay.id == replay_id)
    if lock:
        query = query.with_for_update()
    replay = session.scalar(query)
    if replay is None or (tenant_id is not None and replay.tenant_id != tenant_id):
        raise UnknownReplay(replay_id)
    return replay


def get_replay(sessions: sessionmaker[Session], replay_id: str, *,
               tenant_id: str | None = None) -> ReplayView:
    """The replay and its progress; another tenant's is :class:`UnknownReplay`."""
    with transaction(sessions) as session:
        return _view(_load(session, replay_id, tenant_id))


def cancel_replay(sessions: sessionmaker[Session], replay_id: str, *,
                  tenant_id: str | None = None, clock: Callable[[], datetime] = utcnow) -> ReplayView:
    """Stop a running replay after its current batch; a finished one is left as it is."""
    with transaction(sessions) as session:
        replay = _load(session, replay_id, tenant_id, lock=True)
        if replay.status == ReplayStatus.RUNNING:
            now = clock()
            replay.status = ReplayStatus.CANCELLED
            replay.finished_at = replay.updated_at = now
        return _view(replay)


def run_batch(sessions: sessionmaker[Session], replay_id: str, *, batch: int,
              clock: Callable[[], datetime] = utcnow) -> tuple[ReplayView, list[tuple[str, str]]]:
    """Handle the next *batch* deliveries of a running replay in one transaction.

    Returns the replay after it and the ``(delivery_id, endpoint_id)`` pairs re-armed,
    which the caller must enqueue. A replay with nothing left is marked completed.
    """
    with transaction(sessions) as session:
        replay = _load(session, replay_id, None, lock=True)
        if replay.status != ReplayStatus.RUNNING:
            return _view(replay), []
        now = clock()
        after = (Cursor(replay.cursor_created_at, replay.cursor_id)
                 if replay.cursor_created_at is not None and replay.cursor_id is not None else None)
        rows = _candidates(session, _window_of(replay), after, batch)
        decided = {c.delivery_id: outcome(c) for c in rows}
        wanted = [c.delivery_id for c in rows if decided[c.delivery_id] is Outcome.SENT]
        if wanted:
            # Conditional on a final state: a delivery that moved since the read is active.
            rearmed = set(session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(wanted), Delivery.state.in_(FINAL_STATES),
                       ~exists().where(Event.id == Delivery.event_id, Event.pruned_at.is_not(None)))
                .values(state=DeliveryState.PENDING, attempt_count=0, next_attempt_at=now,
                        queued_at=now, dead_reason=None, dead_at=None, lease_expires_at=None,
                        requeue_count=Delivery.requeue_count + 1, updated_at=now)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)))
            for delivery_id in wanted:
                if delivery_id not in rearmed:
                    decided[delivery_id] = Outcome.SKIPPED_ACTIVE
        if rows:
            session.execute(insert(ReplayItem), [
                {"replay_id": replay.id, "source_delivery_id": c.delivery_id,
                 "outcome": decided[c.delivery_id].value} for c in rows])
        tally = list(decided.values())
        replay.matched += len(rows)
        replay.sent += tally.count(Outcome.SENT)
        replay.pruned += tally.count(Outcome.PRUNED)
        replay.skipped_disabled += tally.count(Outcome.SKIPPED_DISABLED)
        replay.skipped_active += tally.count(Outcome.SKIPPED_ACTIVE)
        cursor = next_cursor(rows, after)
        if cursor is not None:
            replay.cursor_created_at, replay.cursor_id = cursor.created_at, cursor.delivery_id
        if len(rows) < batch:
            replay.status = ReplayStatus.COMPLETED
            replay.finished_at = now
        replay.updated_at = now
        pairs = [(c.delivery_id, c.endpoint_id) for c in rows
                 if decided[c.delivery_id] is Outcome.SENT]
        return _view(replay), pairs


def run_replay(sessions: sessionmaker[Session], dispatcher: Dispatcher, replay_id: str, *,
               batch: int, progress: Callable[[ReplayView, int], None] | None = None,
               max_batches: int | None = None,
               clock: Callable[[], datetime] = utcnow) -> ReplayView:
    """Run (or resume) a replay until it completes, is cancelled, or *max_batches* ran.

    *progress* is called after each batch with the replay and how many deliveries that
    batch handled. Running a finished replay again does nothing.
    """
    view = get_replay(sessions, replay_id)
    done = 0
    while view.status == ReplayStatus.RUNNING and (max_batches is None or done < max_batches):
        before = view.counts.matched
        view, pairs = run_batch(sessions, replay_id, batch=batch, clock=clock)
        enqueue_or_park(sessions, dispatcher, pairs)
        done += 1
        if progress is not None:
            progress(view, view.counts.matched - before)
    return view
