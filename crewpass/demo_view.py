"""What ``hookline demo`` shows: the live view's lines and tables, and the rates in them. Pure.

:mod:`crewpass.demo` reads the database, the receivers and Flower into the plain
values below; this module only turns them into text and ``rich`` tables, so the view
can be checked without running anything. Rates are counted from the times the
receivers accepted a delivery (:func:`rate_over`, :func:`peak_rate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.table import Table

#: The live rate is the deliveries accepted over this many last seconds.
RATE_WINDOW_SECONDS = 3.0


def rate_over(times: Iterable[float], now: float, window: float = RATE_WINDOW_SECONDS) -> float:
    """Deliveries per second over the *window* seconds before *now*."""
    return sum(1 for at in times if now - window < at <= now) / window


def peak_rate(times: Sequence[float]) -> int:
    """The most deliveries accepted within one second (counted per whole second since the first)."""
    if not times:
        return 0
    first = min(times)
    return max(Counter(int(at - first) for at in times).values())


def answers_text(answers: Mapping[int | None, int]) -> str:
    """``503×9 429×9 200×9``: the statuses a webhook answered, most frequent first."""
    return " ".join(f"{status or 'error'}×{n}"
                    for status, n in sorted(answers.items(), key=lambda item: (-item[1], item[0] or 0)))


@dataclass(frozen=True, slots=True)
class WebhookLine:
    """One webhook of the run as the view shows it."""

    label: str
    behaviour: str
    enabled: bool
    deliveries: int
    delivered: int
    attempts: int
    retries: int
    dead_now: int
    requeued: int
    answers: Mapping[int | None, int] = field(default_factory=dict)

    @property
    def dead_lettered(self) -> int:
        """Dead letters so far: those still dead and those already requeued."""
        return self.dead_now + self.requeued


@dataclass(frozen=True, slots=True)
class Services:
    """The URLs of the demo's own services while they run (empty when not running)."""

    flower: str = ""
    console: str = ""
    docs: str = ""


@dataclass(frozen=True, slots=True)
class Throughput:
    """Deliveries per second now and on average, and what Flower counted."""

    now: float
    average: float
    delivered: int
    flower_tasks: int | None = None
    flower_deliveries: int = 0
    flower_tasks_per_second: float = 0.0


def services_line(services: Services) -> str:
    parts = []
    if services.flower:
        parts.append(f"Flower {services.flower}")
    if services.console:
        parts.append(f"console {services.console}")
    if services.docs:
        parts.append(f"API docs {services.docs}")
    return " · ".join(parts) if parts else "no Flower, no console (--no-flower, --no-api)"


def throughput_line(throughput: Throughput) -> str:
    line = (f"[bold]{throughput.now:.1f} deliveries/s[/] now "
            f"({throughput.average:.1f}/s average, {throughput.delivered} delivered)")
    if throughput.flower_tasks is not None:
        line += (f" · Flower: {throughput.flower_tasks} delivery tasks processed "
                 f"({throughput.flower_tasks_per_second:.1f} tasks/s) carrying "
                 f"{throughput.flower_deliveries} deliveries")
    return line


def failures_line(webhooks: Sequence[WebhookLine], requeued_arrived: int) -> str:
    attempts = sum(w.attempts for w in webhooks)
    retries = sum(w.retries for w in webhooks)
    dead_now = sum(w.dead_now for w in webhooks)
    requeued = sum(w.requeued for w in webhooks)
    return (f"attempts {attempts} · [yellow]retries {retries}[/] · "
            f"[red]dead letters {dead_now}[/] waiting · requeued {requeued}, "
            f"[green]{requeued_arrived} arrived after the requeue[/]")


def webhooks_table(webhooks: Sequence[WebhookLine]) -> Table:
    table = Table(title="webhooks: what each receiver answers, and what Hookline did")
    columns = ("webhook", "receiver", "deliveries", "delivered", "attempts", "retries",
               "dead-lettered", "requeued", "answers seen")
    for column in columns:
        table.add_column(column, justify="left" if column in ("webhook", "receiver", "answers seen")
                         else "right")
    for w in webhooks:
        label = w.label if w.enabled else f"{w.label} [red](disabled)[/]"
        table.add_row(label, w.behaviour, str(w.deliveries), str(w.delivered), str(w.attempts),
                      str(w.retries), str(w.dead_lettered), str(w.requeued), answers_text(w.answers))
    return table


def types_table(addressed: Mapping[str, int], received: Mapping[str, int],
                withheld: Mapping[str, int], event_types: Sequence[str]) -> Table:
    table = Table(title="events per type")
    for column in ("event type", "addressed", "received", "withheld"):
        table.add_column(column, justify="left" if column == "event type" else "right")
    for event_type in event_types:
        table.add_row(event_type, str(addressed.get(event_type, 0)), str(received.get(event_type, 0)),
                      str(withheld.get(event_type, 0)))
    return table


@dataclass(frozen=True, slots=True)
class PartnerLine:
    """One partner's receipts at its main webhook and what the gate withheld from it."""

    name: str
    received: int
    duplicates: int
    bad_signatures: int
    withheld: Mapping[str, int]


def partners_table(partners: Sequence[PartnerLine], reasons: Sequence[str]) -> Table:
    table = Table(title="per partner (withheld by the gate: fleet, scope, consent)")
    for column in ("partner", "received", "deduped", "bad sig", "fleet", "scope", "consent"):
        table.add_column(column, justify="left" if column == "partner" else "right")
    for p in partners:
        table.add_row(p.name, str(p.received), str(p.duplicates), str(p.bad_signatures),
                      *(str(p.withheld.get(reason, 0)) for reason in reasons))
    return table
