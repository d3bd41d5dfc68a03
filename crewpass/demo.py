"""``hookline demo``: a CrewPass fleet whose changes become gated, signed deliveries, live.

What runs (all on this machine, bounded unless ``--forever``):

- the local stack of :mod:`app.demo`: embedded Redis unless a broker is configured,
  the migrated database, a worker with the sweeper schedule, ``--producers``
  ``hookline producer`` processes, Flower unless ``--no-flower`` and ``hookline api``
  (which serves the console at ``/console``) unless ``--no-api``, both on loopback;
- one Hookline tenant per CrewPass partner, each with a webhook on its own loopback
  receiver that verifies every signature and dedupes on event id;
- the fleet simulator (:mod:`crewpass.simulator`) changing crew data ``--rate``
  times a second through a session with the CrewPass watches installed
  (:mod:`crewpass.feed`): the changes commit with their outbox rows, the producers
  relay them, the worker delivers them.

Some receivers misbehave (:data:`WEBHOOKS`): Harbor Crewing is overloaded (503, then
429 with ``Retry-After``, then 200: retries), Blue Anchor Lines rejects every event
with 422 (dead letters, ``permanent_4xx``), and Northwind Shipping's second webhook
points at a retired URL that answers 410 Gone (Hookline disables the endpoint and
dead-letters what was waiting for it). Once the first ``--changes`` changes have
settled, the demo fixes both broken receivers and then does what an operator would,
as child processes in the same environment, printing their output:
``hookline endpoints enable`` for the disabled endpoint, then ``hookline dlq requeue``
per broken webhook. The live view shows the requeued deliveries arriving.

The live view shows the Flower and console URLs, deliveries per second (and the
delivery tasks Flower counted), attempts, retries, dead letters and requeues per
webhook, the events per type and what the gate withheld per partner. At the end
every partner must have received exactly the events addressed to it, each verified,
and every delivery must be accounted for: delivered, or dead-lettered and delivered
after the requeue. The exit status says whether that held.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from sqlalchemy import case, func, select
from sqlalchemy.orm import sessionmaker

from app import admin, db
from app.changefeed import READY_MESSAGE, ChangeFeed, OutboxEntry
from app.client import Hookline
from app.demo import (
    COMMAND_TIMEOUT,
    LOOPBACK,
    CommandResult,
    Process,
    Processes,
    demo_environment,
    free_port,
    run_hookline,
    verifier,
)
from app.embedded import ensure_embedded_redis
from app.flower_stats import FlowerCount, read_flower
from app.models import Attempt, Delivery, DeliveryState, Endpoint
from app.receiver import Receiver, Route, Verifier
from config.settings import Settings
from crewpass.demo_view import (
    PartnerLine,
    Services,
    Throughput,
    WebhookLine,
    failures_line,
    partners_table,
    peak_rate,
    rate_over,
    services_line,
    throughput_line,
    types_table,
    webhooks_table,
)
from crewpass.feed import watch_crewpass
from crewpass.gating import Withheld
from crewpass.models import WithheldNotice, create_tables
from crewpass.simulator import DEMO_PARTNERS, FleetSimulator, PartnerSpec, Step, populate
from crewpass.vocabulary import EVENT_TYPES

#: The path each partner's main receiver serves.
PATH = "/crewpass"
#: Where Northwind's retired second webhook points: it answers 410 Gone until restored.
RETIRED_PATH = "/crewpass-v0"
#: The header naming the event type (the receiver keeps headers as sent).
EVENT_TYPE_HEADER = "x-crewpass-event-type"
#: What the overloaded receiver asks for in ``Retry-After`` (seconds): longer than the
#: demo's first retry delay, so the header visibly wins over the schedule.
RETRY_AFTER = "2"
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT, DeliveryState.RETRY_SCHEDULED)
#: Seconds between reads of the database (and of Flower) for the live view.
READ_INTERVAL = 0.25
FLOWER_READ_INTERVAL = 1.0
#: How long Flower and the API get to answer before the demo goes on without them.
SERVICE_START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a webhook's receiver answers each event's attempts, in turn, until the demo fixes it."""

    story: str
    statuses: tuple[int, ...] = (200,)
    retry_after: str | None = None
    #: Broken until the fix: the demo then makes it answer 200 and requeues its dead letters.
    broken: bool = False


#: The run's webhooks: (partner key, path, label suffix, behaviour).
WEBHOOKS: tuple[tuple[str, str, str, Behaviour], ...] = (
    ("northwind", PATH, "", Behaviour("200")),
    ("northwind", RETIRED_PATH, " (old URL)",
     Behaviour("410 Gone (a retired URL: Hookline disables it), until restored", (410,), broken=True)),
    ("blue-anchor", PATH, "",
     Behaviour("422 to every event (a bad deploy), until fixed", (422,), broken=True)),
    ("harbor", PATH, "",
     Behaviour(f"503, then 429 + Retry-After: {RETRY_AFTER}, then 200", (503, 429, 200),
               retry_after=RETRY_AFTER)),
)


@dataclass
class PartnerRun:
    """One partner in this run: its tenant, partner id and receiver."""

    spec: PartnerSpec
    tenant_id: str
    receiver: Receiver
    partner_id: str = ""


@dataclass
class Webhook:
    """One webhook of the run: its endpoint, where it points, and how its receiver behaves."""

    partner: PartnerRun
    path: str
    label: str
    endpoint_id: str
    verify: Verifier
    behaviour: Behaviour

    def answer_as_scripted(self) -> None:
        self.partner.receiver.route(self.path, Route(
            statuses=list(self.behaviour.statuses), verify=self.verify,
            retry_after=self.behaviour.retry_after))

    def answer_200(self) -> None:
        self.partner.receiver.route(self.path, Route(statuses=[200], verify=self.verify))


@dataclass
class EndpointTally:
    """One endpoint's deliveries per state, its attempts and the statuses it answered."""

    states: Counter[str] = field(default_factory=Counter)
    requeued: int = 0
    attempts: int = 0
    retries: int = 0
    answers: Counter[int | None] = field(default_factory=Counter)
    dead_reasons: Counter[str] = field(default_factory=Counter)
    enabled: bool = True


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
    endpoints: dict[str, EndpointTally] = field(default_factory=dict)

    def endpoint(self, endpoint_id: str) -> EndpointTally:
        return self.endpoints.get(endpoint_id) or EndpointTally()


@dataclass(frozen=True, slots=True)
class DeadLetterSeen:
    """A dead letter the demo requeued: which delivery, of which event, to which webhook, why."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    reason: str


@dataclass
class Requeue:
    """The fix and the requeue: the commands run and the dead letters they concerned.

    It runs in a thread of its own (:meth:`start`), so the live view keeps showing the
    requeued deliveries arriving while the next command still runs.
    """

    done: bool = False
    commands: list[CommandResult] = field(default_factory=list)
    dead_letters: list[DeadLetterSeen] = field(default_factory=list)
    error: str = ""
    thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self.thread is not None

    @property
    def failed_commands(self) -> list[CommandResult]:
        return [c for c in self.commands if c.returncode != 0]

    def start(self, fix: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fix()
            except Exception as exc:  # reported in the summary; the run then fails
                self.error = f"{type(exc).__name__}: {exc}"
            else:
                self.done = True

        self.thread = threading.Thread(target=run, name="demo-requeue", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join(COMMAND_TIMEOUT)


def run_demo(settings: Settings, *, changes: int, rate: float, forever: bool, with_flower: bool,
             producers: int, timeout: float, seed: int, console: Console, with_api: bool = True) -> int:
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
            partners.append(PartnerRun(spec, tenant.id, Receiver().start()))
        webhooks = _create_webhooks(hl, partners)

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
        flower_port = free_port(settings.flower_port) if with_flower else None
        api_port = free_port(settings.api_port) if with_api else None
        served: list[tuple[Process, str, str]] = []
        if flower_port is not None:
            flower = processes.spawn("flower", "flower", "--port", str(flower_port),
                                     extra_env={"FLOWER_UNAUTHENTICATED_API": "true"})
            served.append((flower, f"http://{LOOPBACK}:{flower_port}/healthcheck", "Flower"))
        if api_port is not None:
            api = processes.spawn("api", "api", "--host", LOOPBACK, "--port", str(api_port))
            served.append((api, f"http://{LOOPBACK}:{api_port}/healthz", "the API"))
        for process, marker in waiting:
            if not process.wait_for(marker, timeout=60):
                console.print(f"[red]{process.name} did not start: see {process.log}[/]")
                return 1
        up = {name for process, url, name in served
              if process.wait_for_http(url, timeout=SERVICE_START_TIMEOUT)}
        for process, _url, name in served:
            if name not in up:
                console.print(f"[yellow]{name} did not answer; going on without it (see {process.log})[/]")
        services = Services(
            flower=f"http://{LOOPBACK}:{flower_port}" if "Flower" in up else "",
            console=f"http://{LOOPBACK}:{api_port}/console" if "the API" in up else "",
            docs=f"http://{LOOPBACK}:{api_port}/docs" if "the API" in up else "")
        if "Flower" not in up:
            flower_port = None
        console.print(f"{len(world.crew)} crew on {len(world.vessels)} vessels of {len(partners)} partners; "
                      f"logs: {worker.log}, {waiting[1][0].log}")
        if services.flower:
            console.print(f"Flower (live now): {services.flower}")
        if services.console:
            console.print(f"console (live now): {services.console} · API docs: {services.docs}")
        for webhook in webhooks:
            console.print(f"  {webhook.label:<28} receiver answers {webhook.behaviour.story}")

        tenant_ids = [p.tenant_id for p in partners]
        partner_ids = [p.partner_id for p in partners]
        steps: list[Step] = []
        started = time.time()
        deadline = started + timeout
        interval = 1.0 / rate if rate > 0 else 0.0
        next_at = started
        interrupted = False
        tally = Tally()
        flower_count: FlowerCount | None = None
        requeue = Requeue()
        trouble_ended: datetime | None = None

        def view() -> Group:
            now = time.time()
            return Group(_header(steps, started, requeue), services_line(services),
                         throughput_line(_throughput(partners, flower_count, started, now)),
                         failures_line(_webhook_lines(webhooks, tally), _arrived(requeue, webhooks)),
                         _webhooks_view(webhooks, tally), _types_view(partners, tally),
                         _partners_view(partners, tally))

        with Live(view(), console=console, refresh_per_second=4) as live:
            try:
                last_read = last_flower = 0.0
                while forever or time.time() < deadline:
                    now = time.time()
                    if (forever or len(steps) < changes) and now >= next_at:
                        steps.append(simulator.step())
                        next_at += interval
                    if flower_port is not None and now - last_flower >= FLOWER_READ_INTERVAL:
                        flower_count = read_flower(flower_port) or flower_count
                        last_flower = now
                    if now - last_read >= READ_INTERVAL:
                        tally = _read(hl, tenant_ids, partner_ids)
                        live.update(view())
                        last_read = now
                        if len(steps) >= changes and trouble_ended is None:
                            trouble_ended = datetime.now(UTC)
                        if (not requeue.started and trouble_ended is not None
                                and _unsettled(hl, tenant_ids, trouble_ended) == 0):
                            requeue.start(lambda: _fix_and_requeue(hl, env, webhooks, requeue,
                                                                   live.console))
                        if (requeue.done and not forever
                                and tally.outbox_states["pending"] == 0 and tally.open_deliveries == 0):
                            break
                    time.sleep(max(0.0, min(0.05, next_at - time.time())))
            except KeyboardInterrupt:
                interrupted = True
            requeue.wait()
            if flower_port is not None:
                flower_count = read_flower(flower_port) or flower_count
            tally = _read(hl, tenant_ids, partner_ids)
            live.update(view())
        elapsed = time.time() - started
        return _summary(hl, partners, webhooks, steps, tally, requeue, elapsed, console,
                        interrupted=interrupted, forever=forever, services=services,
                        flower_count=flower_count)
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


def _create_webhooks(hl: Hookline, partners: Sequence[PartnerRun]) -> list[Webhook]:
    """Each partner's webhooks as :data:`WEBHOOKS` lists them, receivers answering as scripted."""
    by_key = {p.spec.key: p for p in partners}
    webhooks: list[Webhook] = []
    for key, path, suffix, behaviour in WEBHOOKS:
        partner = by_key[key]
        created = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=partner.tenant_id,
                                     url=partner.receiver.url(path), events=["*"],
                                     policy=hl.egress_policy,
                                     description=f"{partner.spec.name}{suffix} (demo)")
        webhook = Webhook(partner, path, f"{partner.spec.name}{suffix}", created.endpoint.id,
                          verifier(created.secret), behaviour)
        webhook.answer_as_scripted()
        webhooks.append(webhook)
    return webhooks


def _fix_and_requeue(hl: Hookline, env: dict[str, str], webhooks: Sequence[Webhook], requeue: Requeue,
                     console: Console) -> None:
    """Fix the broken receivers, then, as an operator: re-enable what a 410 disabled, requeue."""
    broken = [w for w in webhooks if w.behaviour.broken]
    for webhook in broken:
        webhook.answer_200()
    console.print("[bold]Fixed:[/] " + ", ".join(f"{w.label} now answers 200" for w in broken)
                  + ". Now the operator's commands:")
    with hl.sessions() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.event_id, Delivery.endpoint_id, Delivery.dead_reason)
            .where(Delivery.endpoint_id.in_([w.endpoint_id for w in broken]),
                   Delivery.state == DeliveryState.DEAD)).all()
        disabled = set(session.scalars(select(Endpoint.id).where(
            Endpoint.id.in_([w.endpoint_id for w in broken]), Endpoint.enabled.is_(False))))
    requeue.dead_letters = [DeadLetterSeen(d, e, ep, str(r)) for d, e, ep, r in rows]
    for webhook in broken:
        if webhook.endpoint_id in disabled:
            _operator(env, ["endpoints", "enable", webhook.endpoint_id], requeue, console)
        _operator(env, ["dlq", "requeue", "--all", "--endpoint", webhook.endpoint_id], requeue, console)


def _operator(env: dict[str, str], args: list[str], requeue: Requeue, console: Console) -> None:
    result = run_hookline(env, args)
    requeue.commands.append(result)
    console.print(f"$ {result.command_line}", style="bold", markup=False, highlight=False)
    for line in result.output.splitlines():
        console.print(f"  {line}", markup=False, highlight=False)
    if result.returncode != 0:
        console.print(f"  [red]exited {result.returncode}[/]")


def _unsettled(hl: Hookline, tenant_ids: list[str], before: datetime) -> int:
    """Outbox rows still to relay and deliveries still open, of changes made before *before*."""
    with hl.sessions() as session:
        pending = session.scalar(select(func.count()).select_from(OutboxEntry).where(
            OutboxEntry.tenant_ref.in_(tenant_ids), OutboxEntry.state == "pending",
            OutboxEntry.occurred_at <= before)) or 0
        open_ = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.tenant_id.in_(tenant_ids), Delivery.state.in_(OPEN_STATES),
            Delivery.created_at <= before)) or 0
    return int(pending) + int(open_)


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
        for endpoint_id, enabled in session.execute(
                select(Endpoint.id, Endpoint.enabled).where(Endpoint.tenant_id.in_(tenant_ids))):
            tally.endpoints[endpoint_id] = EndpointTally(enabled=bool(enabled))
        for endpoint_id, state, reason, n, requeued in session.execute(
                select(Delivery.endpoint_id, Delivery.state, Delivery.dead_reason, func.count(),
                       func.sum(case((Delivery.requeue_count > 0, 1), else_=0)))
                .where(Delivery.tenant_id.in_(tenant_ids))
                .group_by(Delivery.endpoint_id, Delivery.state, Delivery.dead_reason)):
            endpoint = tally.endpoints.setdefault(endpoint_id, EndpointTally())
            endpoint.states[str(state)] += n
            endpoint.requeued += int(requeued or 0)
            if state in OPEN_STATES:
                tally.open_deliveries += n
            elif state == DeliveryState.DEAD:
                tally.dead += n
                endpoint.dead_reasons[str(reason)] += n
        for endpoint_id, status, n, retries in session.execute(
                select(Delivery.endpoint_id, Attempt.status_code, func.count(),
                       func.sum(case((Attempt.attempt_number > 1, 1), else_=0)))
                .join(Delivery, Delivery.id == Attempt.delivery_id)
                .where(Delivery.tenant_id.in_(tenant_ids))
                .group_by(Delivery.endpoint_id, Attempt.status_code)):
            endpoint = tally.endpoints.setdefault(endpoint_id, EndpointTally())
            endpoint.answers[status] += n
            endpoint.attempts += n
            endpoint.retries += int(retries or 0)
    return tally


def _received_types(receiver: Receiver) -> dict[str, str]:
    """``event id -> event type`` of what *receiver* accepted (the CrewPass event-type header)."""
    return {request.event_id: next((value for key, value in request.headers.items()
                                    if key.lower() == EVENT_TYPE_HEADER), "?")
            for request in receiver.for_path(PATH) if 200 <= request.status < 300}


def _accepted_times(partners: Sequence[PartnerRun]) -> list[float]:
    """When each delivery was first accepted, at any receiver of the run."""
    first: dict[tuple[str, str], float] = {}
    for partner in partners:
        for request in partner.receiver.received:
            key = (request.path, request.event_id)
            if 200 <= request.status < 300 and key not in first:
                first[key] = request.at
    return list(first.values())


def _throughput(partners: Sequence[PartnerRun], flower: FlowerCount | None, started: float,
                now: float) -> Throughput:
    times = _accepted_times(partners)
    elapsed = max(now - started, 1e-6)
    return Throughput(now=rate_over(times, now), average=len(times) / elapsed, delivered=len(times),
                      flower_tasks=flower.tasks if flower else None,
                      flower_deliveries=flower.deliveries if flower else 0,
                      flower_tasks_per_second=flower.tasks_per_second(elapsed) if flower else 0.0)


def _webhook_lines(webhooks: Sequence[Webhook], tally: Tally) -> list[WebhookLine]:
    lines = []
    for w in webhooks:
        t = tally.endpoint(w.endpoint_id)
        lines.append(WebhookLine(
            label=w.label, behaviour=w.behaviour.story, enabled=t.enabled,
            deliveries=sum(t.states.values()), delivered=t.states[str(DeliveryState.SUCCEEDED)],
            attempts=t.attempts, retries=t.retries, dead_now=t.states[str(DeliveryState.DEAD)],
            requeued=t.requeued, answers=dict(t.answers)))
    return lines


def _arrived(requeue: Requeue, webhooks: Sequence[Webhook]) -> int:
    """How many of the requeued dead letters their receiver has accepted since."""
    by_endpoint = {w.endpoint_id: w for w in webhooks}
    accepted = {w.endpoint_id: w.partner.receiver.accepted(w.path) for w in webhooks}
    return sum(1 for d in requeue.dead_letters
               if d.endpoint_id in by_endpoint and d.event_id in accepted[d.endpoint_id])


def _header(steps: list[Step], started: float, requeue: Requeue) -> str:
    published = sum(1 for s in steps if s.publishes)
    last = f" · last: {steps[-1].summary}" if steps else ""
    phase = ("[green]fixed and requeued[/]" if requeue.done
             else "[cyan]fixing, then requeueing[/]" if requeue.started
             else "[yellow]partners failing: retries and dead letters[/]")
    return (f"[bold]{len(steps)}[/] crew changes ({published} CrewPass publishes, "
            f"{len(steps) - published} internal or gate-only) · {time.time() - started:.1f}s · "
            f"{phase}{last}")


def _webhooks_view(webhooks: Sequence[Webhook], tally: Tally) -> Table:
    return webhooks_table(_webhook_lines(webhooks, tally))


def _types_view(partners: Sequence[PartnerRun], tally: Tally) -> Table:
    received: Counter[str] = Counter()
    for partner in partners:
        received.update(_received_types(partner.receiver).values())
    return types_table(tally.addressed, received, tally.withheld_by_type, EVENT_TYPES)


def _partners_view(partners: Sequence[PartnerRun], tally: Tally) -> Table:
    return partners_table([
        PartnerLine(p.spec.name, len(p.receiver.accepted(PATH)), p.receiver.duplicates,
                    p.receiver.bad_signatures,
                    {str(r): tally.withheld[(p.partner_id, str(r))] for r in Withheld})
        for p in partners], [str(r) for r in Withheld])


def _summary(hl: Hookline, partners: list[PartnerRun], webhooks: list[Webhook], steps: list[Step],
             tally: Tally, requeue: Requeue, elapsed: float, console: Console, *, interrupted: bool,
             forever: bool, services: Services, flower_count: FlowerCount | None) -> int:
    expected: dict[str, set[str]] = {}
    occurred: dict[str, float] = {}
    addressed_to: dict[str, set[str]] = {}
    with hl.sessions() as session:
        for tenant, event_id, at in session.execute(
                select(OutboxEntry.tenant_ref, OutboxEntry.event_id, OutboxEntry.occurred_at)
                .where(OutboxEntry.tenant_ref.in_([p.tenant_id for p in partners]))):
            expected.setdefault(tenant, set()).add(event_id)
            occurred[event_id] = at.timestamp()
        for endpoint_id, event_id in session.execute(
                select(Delivery.endpoint_id, Delivery.event_id)
                .where(Delivery.endpoint_id.in_([w.endpoint_id for w in webhooks]))):
            addressed_to.setdefault(endpoint_id, set()).add(event_id)
    console.print()
    console.print("[bold]Summary[/]")
    kinds = Counter(s.kind for s in steps)
    console.print(f"  crew changes      {len(steps)} in {elapsed:.1f}s: "
                  + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    console.print(f"  outbox rows       {sum(tally.outbox_states.values())} "
                  f"({', '.join(f'{k} {n}' for k, n in sorted(tally.outbox_states.items()))})")
    settled = not interrupted and tally.outbox_states["failed"] == 0 and tally.open_deliveries == 0
    partners_ok = settled
    first_seen: dict[str, float] = {}
    for partner in partners:
        wanted = expected.get(partner.tenant_id, set())
        got = partner.receiver.accepted(PATH)
        missing, extra = wanted - got, got - wanted
        withheld = {str(r): tally.withheld[(partner.partner_id, str(r))] for r in Withheld}
        ok = not missing and not extra and partner.receiver.bad_signatures == 0
        partners_ok = partners_ok and ok
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

    lines = _webhook_lines(webhooks, tally)
    times = _accepted_times(partners)
    console.print(f"  deliveries        {len(times)} delivered in {elapsed:.1f}s: "
                  f"{len(times) / max(elapsed, 1e-6):.1f} deliveries/s average, "
                  f"peak {peak_rate(times)} in one second")
    attempts, retries = sum(w.attempts for w in lines), sum(w.retries for w in lines)
    console.print(f"  attempts          {attempts} for {sum(w.deliveries for w in lines)} deliveries, "
                  f"{retries} of them retries: "
                  + (", ".join(f"{w.label} {w.retries} ({w.behaviour})" for w in lines if w.retries)
                     or "none"))
    # Dead letters: those still dead, and those requeued since (their reason was seen before).
    with hl.sessions() as session:
        still_dead = set(session.scalars(select(Delivery.id).where(
            Delivery.endpoint_id.in_([w.endpoint_id for w in webhooks]),
            Delivery.state == DeliveryState.DEAD)))
    revived = [d for d in requeue.dead_letters if d.delivery_id not in still_dead]
    labels = {w.endpoint_id: w.label for w in webhooks}
    reasons = Counter(d.reason for d in revived)
    per_webhook = Counter(labels[d.endpoint_id] for d in revived)
    for webhook in webhooks:
        endpoint = tally.endpoint(webhook.endpoint_id)
        reasons.update(endpoint.dead_reasons)
        if endpoint.states[str(DeliveryState.DEAD)]:
            per_webhook[webhook.label] += endpoint.states[str(DeliveryState.DEAD)]
    console.print(f"  dead-lettered     {sum(reasons.values())}"
                  + (": " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
                     + " (" + ", ".join(f"{label} {n}" for label, n in per_webhook.items()) + ")"
                     if reasons else ""))
    gone = [w.label for w in lines if 410 in w.answers]
    if gone:
        console.print(f"  disabled by 410   {', '.join(gone)}: nothing more was addressed to it "
                      "until `hookline endpoints enable`")
    arrived = _arrived(requeue, webhooks)
    if requeue.done:
        ran = "; ".join(f"`{c.command_line}`" for c in requeue.commands)
        console.print(f"  requeued          {len(requeue.dead_letters)} after fixing the receivers "
                      f"({ran}); {arrived} of {len(requeue.dead_letters)} arrived after the requeue")
    elif requeue.error:
        console.print(f"  [red]requeue failed: {requeue.error}[/]")
    else:
        console.print("  requeued          nothing: the run ended before the fix")
    endpoints_ok = True
    for webhook in webhooks:
        wanted = addressed_to.get(webhook.endpoint_id, set())
        got = webhook.partner.receiver.accepted(webhook.path)
        if wanted != got:
            endpoints_ok = False
            console.print(f"  [red]{webhook.label}: {len(wanted - got)} delivery(ies) not received, "
                          f"{len(got - wanted)} unexpected[/]")
    if services.flower:
        counted = (f"counted {flower_count.tasks} delivery tasks "
                   f"({flower_count.tasks_per_second(elapsed):.1f} tasks/s) carrying "
                   f"{flower_count.deliveries} deliveries" if flower_count else "counted nothing")
        console.print(f"  Flower            was live at {services.flower}: {counted} "
                      "(`hookline demo --forever` keeps it up)")
    if services.console:
        console.print(f"  console           was live at {services.console} (`hookline api`)")
    if partners_ok:
        console.print("  [green]every partner received exactly the events addressed to it[/]")
    accounted = (settled and partners_ok and endpoints_ok and tally.dead == 0 and requeue.done
                 and not requeue.failed_commands and arrived == len(requeue.dead_letters))
    delivered = sum(w.delivered for w in lines)
    if accounted:
        console.print(f"  [green]every delivery accounted for: {delivered} delivered, "
                      f"{len(requeue.dead_letters)} of them dead-lettered first and delivered "
                      "after the requeue[/]")
    elif interrupted:
        console.print(f"  [yellow]stopped by Ctrl-C with {tally.open_deliveries} delivery(ies) still "
                      f"open and {tally.outbox_states['pending']} outbox row(s) to relay[/]")
    else:
        console.print("  [red]the run did not settle: see above[/]")
    return 0 if accounted or forever else 1
