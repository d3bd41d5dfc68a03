"""``hookline demo``: a CrewPass fleet whose changes become gated, signed deliveries, live.

What runs (all on this machine, bounded unless ``--forever``):

- the local stack of :mod:`app.demo`: embedded Redis unless a broker is configured,
  the migrated database, a worker with the sweeper schedule, ``--producers``
  ``hookline producer`` processes, and Flower unless ``--no-flower``;
- one Hookline tenant per CrewPass partner, each with a webhook on its own loopback
  receiver that verifies every signature and dedupes on event id (Harbor Crewing's
  receiver fails each event's first attempt with a 503, so retries show);
- the fleet simulator (:mod:`crewpass.simulator`) changing crew data ``--rate``
  times a second through a session with the CrewPass watches installed
  (:mod:`crewpass.feed`): the changes commit with their outbox rows, the producers
  relay them, the worker delivers them.

The live view shows the events per type (outbox rows addressed, receipts, what the
gate withheld) and per partner (received, duplicates deduped, withheld by fleet,
scope and consent). At the end every partner must have received exactly the events
addressed to it, each verified; the exit status says whether that held.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from app import admin, db
from app.changefeed import READY_MESSAGE, ChangeFeed, OutboxEntry
from app.client import Hookline
from app.demo import Processes, demo_environment, verifier
from app.embedded import ensure_embedded_redis
from app.models import Delivery, DeliveryState
from app.receiver import Receiver, Route
from config.settings import Settings
from crewpass.feed import watch_crewpass
from crewpass.gating import Withheld
from crewpass.models import WithheldNotice, create_tables
from crewpass.simulator import DEMO_PARTNERS, FleetSimulator, PartnerSpec, Step, populate
from crewpass.vocabulary import EVENT_TYPES

#: The path each partner's receiver serves.
PATH = "/crewpass"
#: The header naming the event type (the receiver keeps headers as sent).
EVENT_TYPE_HEADER = "x-crewpass-event-type"
#: The partner whose receiver fails each event's first attempt.
FLAKY_PARTNER = "harbor"
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT, DeliveryState.RETRY_SCHEDULED)


@dataclass
class PartnerRun:
    """One partner in this run: its tenant, partner id, receiver and secret."""

    spec: PartnerSpec
    tenant_id: str
    receiver: Receiver
    partner_id: str = ""


@dataclass
class Tally:
    """What the database says about this run, read at each refresh."""

    #: Outbox rows (one per partner addressed) per event type, and per state.
    addressed: Counter[str] = field(default_factory=Counter)
    outbox_states: Counter[str] = field(default_factory=Counter)
    #: ``(partner id, reason) -> count`` and ``event type -> count``.
    withheld: Counter[tuple[str, str]] = field(default_factory=Counter)
    withheld_by_type: Counter[str] = field(default_factory=Counter)
    open_deliveries: int = 0
    dead: int = 0


def run_demo(settings: Settings, *, changes: int, rate: float, forever: bool, with_flower: bool,
             producers: int, timeout: float, seed: int, console: Console) -> int:
    env, settings = demo_environment(settings)
    console.print(f"[bold]Hookline demo: CrewPass[/] database: "
                  f"{settings.resolved_database_url.split('@')[-1]}")
    broker = ensure_embedded_redis(settings)
    console.print(f"broker: {settings.resolved_broker_url}"
                  + (" (embedded, started now)" if broker and broker.started_here else ""))
    db.upgrade(settings)
    hl = Hookline(settings)
    create_tables(hl.engine)
    processes = Processes(env, settings)
    partners: list[PartnerRun] = []
    try:
        run = f"{time.strftime('%Y%m%d-%H%M%S')}-{random.randrange(1000):03d}"
        for spec in DEMO_PARTNERS:
            tenant = admin.create_tenant(hl.sessions, f"{spec.key}-{run}")
            receiver = Receiver().start()
            created = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant.id,
                                         url=receiver.url(PATH), events=["*"], policy=hl.egress_policy,
                                         description=f"{spec.name} (demo)")
            statuses = [503, 200] if spec.key == FLAKY_PARTNER else [200]
            receiver.route(PATH, Route(statuses=statuses, verify=verifier(created.secret)))
            partners.append(PartnerRun(spec, tenant.id, receiver))

        sessions = sessionmaker(hl.engine)
        world = populate(sessions, {p.spec.key: p.tenant_id for p in partners}, seed=seed)
        for partner in partners:
            partner.partner_id = world.partners[partner.spec.key]
        feed = ChangeFeed.for_hookline(hl)
        watch_crewpass(feed)
        feed.install(sessions)
        simulator = FleetSimulator(sessions, world, seed=seed + 1)

        # The worker logs at INFO so its "ready." line shows; the simulator starts once
        # the worker and every producer are ready.
        worker = processes.spawn("worker", "worker", "--beat", "--concurrency", "8",
                                 extra_env={"HOOKLINE_LOG_LEVEL": "INFO"})
        waiting = [(worker, " ready.")]
        waiting += [(processes.spawn(f"producer{n}", "producer"), READY_MESSAGE) for n in range(producers)]
        if with_flower:
            processes.spawn("flower", "flower", extra_env={"FLOWER_UNAUTHENTICATED_API": "true"})
            console.print(f"Flower: http://127.0.0.1:{settings.flower_port}")
        for process, marker in waiting:
            if not process.wait_for(marker, timeout=60):
                console.print(f"[red]{process.name} did not start: see {process.log}[/]")
                return 1
        console.print(f"{len(world.crew)} crew on {len(world.vessels)} vessels of {len(partners)} partners; "
                      f"logs: {worker.log}, {waiting[1][0].log}")

        tenant_ids = [p.tenant_id for p in partners]
        partner_ids = [p.partner_id for p in partners]
        steps: list[Step] = []
        started = time.time()
        deadline = started + timeout
        interval = 1.0 / rate if rate > 0 else 0.0
        next_at = started
        interrupted = False
        tally = Tally()

        def view() -> Group:
            return Group(_header(steps, started), _types_table(partners, tally),
                         _partners_table(partners, tally))

        with Live(view(), console=console, refresh_per_second=4) as live:
            try:
                last_read = 0.0
                while forever or time.time() < deadline:
                    now = time.time()
                    if (forever or len(steps) < changes) and now >= next_at:
                        steps.append(simulator.step())
                        next_at += interval
                    if now - last_read >= 0.25:
                        tally = _read(hl, tenant_ids, partner_ids)
                        live.update(view())
                        last_read = now
                        if (not forever and len(steps) >= changes
                                and tally.outbox_states["pending"] == 0 and tally.open_deliveries == 0):
                            break
                    time.sleep(max(0.0, min(0.05, next_at - time.time())))
            except KeyboardInterrupt:
                interrupted = True
        elapsed = time.time() - started
        tally = _read(hl, tenant_ids, partner_ids)
        return _summary(hl, partners, steps, tally, elapsed, console,
                        interrupted=interrupted, forever=forever, flower=with_flower,
                        flower_port=settings.flower_port)
    finally:
        for partner in partners:
            for endpoint in admin.list_endpoints(hl.sessions, tenant=partner.tenant_id):
                admin.set_endpoint_enabled(hl.sessions, endpoint.id, False)
        processes.stop_all()
        for partner in partners:
            partner.receiver.stop()
        hl.close()
        if broker is not None:
            broker.stop()
        embedded = " and the embedded Redis" if broker and broker.started_here else ""
        names = ", ".join(p.name for p in processes.started)
        console.print(f"stopped {names}, the receivers{embedded}")


def _read(hl: Hookline, tenant_ids: list[str], partner_ids: list[str]) -> Tally:
    tally = Tally()
    with hl.sessions() as session:
        for event_type, state, n in session.execute(
                select(OutboxEntry.event_type, OutboxEntry.state, func.count())
                .where(OutboxEntry.tenant_ref.in_(tenant_ids))
                .group_by(OutboxEntry.event_type, OutboxEntry.state)):
            tally.addressed[event_type] += n
            tally.outbox_states[str(state)] += n
        for partner_id, reason, event_type, n in session.execute(
                select(WithheldNotice.partner_id, WithheldNotice.reason, WithheldNotice.event_type,
                       func.count())
                .where(WithheldNotice.partner_id.in_(partner_ids))
                .group_by(WithheldNotice.partner_id, WithheldNotice.reason, WithheldNotice.event_type)):
            tally.withheld[(partner_id, reason)] += n
            tally.withheld_by_type[event_type] += n
        for state, n in session.execute(
                select(Delivery.state, func.count()).where(Delivery.tenant_id.in_(tenant_ids))
                .group_by(Delivery.state)):
            if state in OPEN_STATES:
                tally.open_deliveries += n
            elif state == DeliveryState.DEAD:
                tally.dead += n
    return tally


def _received_types(receiver: Receiver) -> dict[str, str]:
    """``event id -> event type`` of what *receiver* accepted (the CrewPass event-type header)."""
    return {request.event_id: next((value for key, value in request.headers.items()
                                    if key.lower() == EVENT_TYPE_HEADER), "?")
            for request in receiver.for_path(PATH) if 200 <= request.status < 300}


def _header(steps: list[Step], started: float) -> str:
    published = sum(1 for s in steps if s.publishes)
    last = f" · last: {steps[-1].summary}" if steps else ""
    return (f"[bold]{len(steps)}[/] crew changes ({published} CrewPass publishes, "
            f"{len(steps) - published} internal or gate-only) · {time.time() - started:.1f}s{last}")


def _types_table(partners: list[PartnerRun], tally: Tally) -> Table:
    table = Table(title="events per type")
    for column in ("event type", "addressed", "received", "withheld"):
        table.add_column(column, justify="left" if column == "event type" else "right")
    received: Counter[str] = Counter()
    for partner in partners:
        received.update(_received_types(partner.receiver).values())
    for event_type in EVENT_TYPES:
        table.add_row(event_type, str(tally.addressed[event_type]), str(received[event_type]),
                      str(tally.withheld_by_type[event_type]))
    return table


def _partners_table(partners: list[PartnerRun], tally: Tally) -> Table:
    table = Table(title="per partner (withheld by the gate: fleet, scope, consent)")
    for column in ("partner", "received", "deduped", "bad sig", "fleet", "scope", "consent"):
        table.add_column(column, justify="left" if column == "partner" else "right")
    for partner in partners:
        receiver = partner.receiver
        table.add_row(partner.spec.name,
                      str(len(receiver.accepted(PATH))), str(receiver.duplicates),
                      str(receiver.bad_signatures),
                      *(str(tally.withheld[(partner.partner_id, str(reason))]) for reason in Withheld))
    return table


def _summary(hl: Hookline, partners: list[PartnerRun], steps: list[Step], tally: Tally,
             elapsed: float, console: Console, *, interrupted: bool, forever: bool,
             flower: bool, flower_port: int) -> int:
    expected: dict[str, set[str]] = {}
    occurred: dict[str, float] = {}
    with hl.sessions() as session:
        for tenant, event_id, at in session.execute(
                select(OutboxEntry.tenant_ref, OutboxEntry.event_id, OutboxEntry.occurred_at)
                .where(OutboxEntry.tenant_ref.in_([p.tenant_id for p in partners]))):
            expected.setdefault(tenant, set()).add(event_id)
            occurred[event_id] = at.timestamp()
    console.print()
    console.print("[bold]Summary[/]")
    kinds = Counter(s.kind for s in steps)
    console.print(f"  crew changes      {len(steps)} in {elapsed:.1f}s: "
                  + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    console.print(f"  outbox rows       {sum(tally.outbox_states.values())} "
                  f"({', '.join(f'{k} {n}' for k, n in sorted(tally.outbox_states.items()))})")
    healthy = not interrupted and tally.outbox_states["failed"] == 0 and tally.open_deliveries == 0
    first_seen: dict[str, float] = {}
    for partner in partners:
        wanted = expected.get(partner.tenant_id, set())
        got = partner.receiver.accepted(PATH)
        missing, extra = wanted - got, got - wanted
        withheld = {str(r): tally.withheld[(partner.partner_id, str(r))] for r in Withheld}
        ok = not missing and not extra and partner.receiver.bad_signatures == 0
        healthy = healthy and ok
        verified = "all verified" if partner.receiver.bad_signatures == 0 else "[red]bad signatures[/]"
        console.print(f"  {partner.spec.name:<20} received {len(got)} of {len(wanted)} addressed"
                      f" ({verified},"
                      f" {partner.receiver.duplicates} duplicate(s) deduped); withheld: "
                      + ", ".join(f"{k} {v}" for k, v in withheld.items())
                      + ("" if ok else f" [red]missing {len(missing)}, unexpected {len(extra)}[/]"))
        for request in partner.receiver.received:  # an event id is one partner's event
            first_seen[request.event_id] = min(first_seen.get(request.event_id, request.at), request.at)
    latencies = sorted((at - occurred[event_id]) * 1000
                       for event_id, at in first_seen.items() if event_id in occurred)
    if latencies:
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        console.print(f"  change → first request at the receiver: p50 {statistics.median(latencies):.0f} ms,"
                      f" p95 {p95:.0f} ms over {len(latencies)} deliveries")
    console.print(f"  dead-lettered     {tally.dead}")
    if flower:
        console.print(f"  Flower was at http://127.0.0.1:{flower_port} "
                      "(`hookline demo --forever` keeps it up)")
    console.print("  [green]every partner received exactly the events addressed to it[/]" if healthy
                  else "  [red]the run did not settle: see above[/]")
    return 0 if healthy or forever else 1
