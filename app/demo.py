"""``hookline demo``: the whole pipeline on this machine, watched live.

Starts what it needs (the embedded Redis unless a broker is configured, a worker with
the sweeper schedule, Flower, and a loopback receiver that verifies every signature
and dedupes on event id), publishes sample CrewPass events, shows progress, prints a
summary and shuts everything down. Bounded by ``--events`` unless ``--forever``.

The receiver is plain http on 127.0.0.1, which the egress policy refuses by default,
so the demo allows plain http and adds 127.0.0.1 to ``HOOKLINE_EGRESS_ALLOW`` for its
own processes (keeping whatever the environment already allows).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import func, select

from app import admin, db
from app.client import Hookline
from app.embedded import ensure_embedded_redis
from app.models import Attempt, Delivery, DeliveryState
from app.receiver import Receiver, Route, Verifier
from app.verify import VerificationError, verify
from config.settings import Settings, get_settings

#: Settings the demo uses unless the environment already sets them: quick retries.
DEMO_DEFAULTS = {"HOOKLINE_RETRY_BASE_SECONDS": "1", "HOOKLINE_RETRY_JITTER": "0.1",
                 "HOOKLINE_SWEEP_INTERVAL": "1", "HOOKLINE_LOG_LEVEL": "WARNING"}
#: Where the demo's receiver listens; the only network the demo adds to the allow-list.
DEMO_RECEIVER_NETWORK = "127.0.0.1/32"

CREW_EVENTS = [
    ("crew.document.processed", lambda i: {"crew_id": f"crw_{i % 7}", "document_id": f"doc_{i}",
                                           "document_type": "STCW_BST", "status": "verified"}),
    ("crew.document.updated", lambda i: {"crew_id": f"crw_{i % 7}", "document_id": f"doc_{i}",
                                         "status": "expiring"}),
    ("crew.compliance.changed", lambda i: {"crew_id": f"crw_{i % 7}", "overall_status": "at_risk",
                                           "previous_status": "compliant"}),
    ("crew.status.changed", lambda i: {"crew_id": f"crw_{i % 7}",
                                       "background_check_status": "completed"}),
]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def _spawn(name: str, args: list[str], env: Mapping[str, str], settings: Settings) -> Process:
    log = open(settings.data_dir / f"demo-{name}.log", "wb")  # noqa: SIM115 - lives with the child
    popen = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=dict(env),
                             stdout=log, stderr=subprocess.STDOUT)
    return Process(name, popen)


def _verifier(secret: str, contract: str = "crewpass") -> Verifier:
    def check(headers: Mapping[str, str], body: bytes) -> bool:
        try:
            verify(contract, secret, headers, body)
        except VerificationError:
            return False
        return True

    return check


def receiver_access(settings: Settings) -> dict[str, str]:
    """The variables that let deliveries reach the demo's loopback receiver over plain http."""
    allowed = [*settings.egress_allow]
    if DEMO_RECEIVER_NETWORK not in allowed:
        allowed.append(DEMO_RECEIVER_NETWORK)
    return {"HOOKLINE_ALLOW_HTTP": "true", "HOOKLINE_EGRESS_ALLOW": ",".join(allowed)}


def run_demo(settings: Settings, *, events: int, rate: float, forever: bool, with_flower: bool,
             timeout: float, console: Console) -> int:
    env = dict(os.environ)
    for key, value in DEMO_DEFAULTS.items():
        env.setdefault(key, value)
    access = receiver_access(settings)
    env.update(access)
    env["HOOKLINE_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ.update({k: env[k] for k in DEMO_DEFAULTS} | access)
    settings = get_settings(data_dir=settings.data_dir.resolve())
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    console.print(f"[bold]Hookline demo[/] database: {settings.resolved_database_url.split('@')[-1]}")
    broker = ensure_embedded_redis(settings)
    console.print(f"broker: {settings.resolved_broker_url}"
                  + (" (embedded, started now)" if broker and broker.started_here else ""))
    db.upgrade(settings)
    hl = Hookline(settings)
    receiver = Receiver().start()
    processes: list[Process] = []
    try:
        run_name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{random.randrange(1000)}"
        tenant = admin.create_tenant(hl.sessions, run_name)
        ok = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant.id,
                                url=receiver.url("/partner"), events=["*"], policy=hl.egress_policy)
        flaky = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant.id,
                                   url=receiver.url("/flaky"), events=["crew.compliance.changed"],
                                   policy=hl.egress_policy)
        reject = admin.add_endpoint(hl.sessions, hl.catalogue, tenant=tenant.id,
                                    url=receiver.url("/reject"), events=["crew.profile.updated"],
                                    policy=hl.egress_policy)
        receiver.route("/partner", Route(verify=_verifier(ok.secret)))
        receiver.route("/flaky", Route(statuses=[503, 200], verify=_verifier(flaky.secret)))
        receiver.route("/reject", Route(statuses=[400], verify=_verifier(reject.secret)))
        endpoint_names = {ok.endpoint.id: "/partner (200)", flaky.endpoint.id: "/flaky (503, then 200)",
                          reject.endpoint.id: "/reject (400)"}

        processes.append(_spawn("worker", ["worker", "--beat", "--concurrency", "8"], env, settings))
        flower_url = None
        if with_flower:
            processes.append(_spawn("flower", ["flower"], {**env, "FLOWER_UNAUTHENTICATED_API": "true"},
                                    settings))
            flower_url = f"http://127.0.0.1:{settings.flower_port}"
            console.print(f"Flower: {flower_url}")
        console.print(f"receiver: http://127.0.0.1:{receiver.port} · worker log: "
                      f"{settings.data_dir / 'demo-worker.log'}")

        started = time.time()
        published = 0
        deadline = started + timeout
        interval = 1.0 / rate if rate > 0 else 0.0
        next_at = started

        def snapshot() -> dict[str, Counter[str]]:
            with hl.sessions() as session:
                rows = session.execute(
                    select(Delivery.endpoint_id, Delivery.state, func.count())
                    .where(Delivery.tenant_id == tenant.id)
                    .group_by(Delivery.endpoint_id, Delivery.state)
                ).all()
            table: dict[str, Counter[str]] = {}
            for endpoint_id, state, count in rows:
                table.setdefault(endpoint_id, Counter())[state] += count
            return table

        def render(states: dict[str, Counter[str]]) -> Table:
            view = Table(title=f"published {published} event(s) · {time.time() - started:.1f}s")
            for column in ("endpoint", "pending", "retrying", "delivered", "dead-lettered"):
                view.add_column(column)
            for endpoint_id, name in endpoint_names.items():
                c = states.get(endpoint_id, Counter())
                view.add_row(name, str(c[DeliveryState.PENDING] + c[DeliveryState.IN_FLIGHT]),
                             str(c[DeliveryState.RETRY_SCHEDULED]), str(c[DeliveryState.SUCCEEDED]),
                             str(c[DeliveryState.DEAD]))
            return view

        interrupted = False
        with Live(render({}), console=console, refresh_per_second=4) as live:
            try:
                while time.time() < deadline or forever:
                    now = time.time()
                    if (forever or published < events) and now >= next_at:
                        data: dict[str, Any]
                        if published == events // 2 or (events == 1 and published == 0):
                            event_type, data = "crew.profile.updated", {"crew_id": "crw_1",
                                                                        "fields": ["phone"]}
                        else:
                            event_type, make = CREW_EVENTS[published % len(CREW_EVENTS)]
                            data = make(published)
                        hl.publish(tenant.id, event_type, data)
                        published += 1
                        next_at += interval
                    states = snapshot()
                    live.update(render(states))
                    if not forever and published >= events:
                        open_ = sum(c[s] for c in states.values() for s in
                                    (DeliveryState.PENDING, DeliveryState.IN_FLIGHT,
                                     DeliveryState.RETRY_SCHEDULED))
                        if open_ == 0:
                            break
                    time.sleep(min(0.05, max(0.0, next_at - time.time())) if published < events
                               else 0.25)
            except KeyboardInterrupt:
                interrupted = True
        elapsed = time.time() - started

        states = snapshot()
        with hl.sessions() as session:
            retried = session.scalar(
                select(func.count()).select_from(Delivery)
                .where(Delivery.tenant_id == tenant.id, Delivery.state == DeliveryState.SUCCEEDED,
                       Delivery.attempt_count > 1)) or 0
            attempts = session.scalar(
                select(func.count()).select_from(Attempt).join(Delivery)
                .where(Delivery.tenant_id == tenant.id)) or 0
            reasons = Counter(r for (r,) in session.execute(
                select(Delivery.dead_reason).where(Delivery.tenant_id == tenant.id,
                                                   Delivery.state == DeliveryState.DEAD)))
        delivered = sum(c[DeliveryState.SUCCEEDED] for c in states.values())
        dead = sum(c[DeliveryState.DEAD] for c in states.values())
        waiting = sum(c[s] for c in states.values() for s in (
            DeliveryState.PENDING, DeliveryState.IN_FLIGHT, DeliveryState.RETRY_SCHEDULED))
        console.print()
        console.print("[bold]Summary[/]")
        console.print(f"  events published      {published}")
        console.print(f"  deliveries succeeded  {delivered} ({retried} after a retry)")
        console.print(f"  attempts made         {attempts}")
        console.print(f"  dead-lettered         {dead} "
                      + (f"({', '.join(f'{k}: {v}' for k, v in reasons.items())})" if dead else ""))
        console.print(f"  still waiting         {waiting}")
        console.print(f"  deliveries/s          {delivered / elapsed:.1f} over {elapsed:.1f}s")
        console.print(f"  receiver: {len(receiver.received)} requests, signatures verified on every one"
                      if receiver.bad_signatures == 0 else
                      f"  receiver: [red]{receiver.bad_signatures} bad signature(s)[/]")
        console.print(f"  receiver deduped {receiver.duplicates} duplicate(s) on event id")
        if flower_url:
            console.print(f"  Flower was at {flower_url} (runs with `hookline flower`; "
                          "`hookline demo --forever` keeps it up)")
        console.print("  `hookline dlq list` shows the dead letter; `hookline dlq requeue --all` resends it")
        healthy = (waiting == 0 and receiver.bad_signatures == 0 and not interrupted
                   and reasons.get("permanent_4xx", 0) >= 1 and retried >= 1)
        return 0 if healthy or forever else 1
    finally:
        for endpoint_id in list(locals().get("endpoint_names", {})):
            admin.set_endpoint_enabled(hl.sessions, endpoint_id, False)
        for process in reversed(processes):
            process.stop()
        receiver.stop()
        hl.close()
        if broker is not None:
            broker.stop()
        console.print("stopped the worker, Flower, the receiver"
                      + (" and the embedded Redis" if broker and broker.started_here else ""))
