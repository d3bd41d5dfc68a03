"""The benchmark's output: the tables, and every figure next to its target.

``figures`` turns the results of ``bench/run.py`` into one row per figure the
delivery-engine issue asks for; ``TARGETS`` holds the issue's targets as data (a
figure without one prints "not set" and is neither met nor missed).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """``field`` of the figure's row (``ratio`` or ``hookline``) compared with ``value``."""

    op: str  # ">=" or "<="
    value: float
    field: str = "ratio"

    def text(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.value:g}" + (
            "×" if self.field == "ratio" else "")

    def met(self, row: dict[str, Any]) -> bool | None:
        value = row.get(self.field)
        if value is None:
            return None
        compare: Callable[[float, float], bool] = operator.ge if self.op == ">=" else operator.le
        return bool(compare(float(value), self.value))


#: The issue's targets, keyed like the rows of :func:`figures`.
TARGETS: dict[str, Target] = {
    "throughput_batch": Target(">=", 3.0),  # publish_many, ≥ 3× the naive sender
    "throughput_single": Target(">=", 1.5),  # one publish() per event, ≥ 1.5× naive
    "drain": Target(">=", 3.0),  # workers alone, ≥ 3× the naive workers
    "latency_p50": Target("<=", 10.0, field="hookline"),  # ms at 100 events/s
    "latency_p99": Target("<=", 25.0, field="hookline"),
    "memory_rss": Target("<=", 50.0, field="hookline"),  # MB, the workers' RSS growth in all
    "isolation_throughput": Target(">=", 0.90),  # the nine keep ≥ 90 % of their deliveries/s
    "isolation_p99": Target("<=", 2.0),  # and their p99 at most doubles
}


def memory_dict(result: Any) -> dict[str, Any]:
    data = asdict(result)
    data["rss_increase"] = result.rss_increase
    return data


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures by name (the keys earlier versions of results.json had, and ratios)."""
    rows = {row["key"]: row for row in report["figures"]}

    def get(key: str, column: str) -> Any:
        return rows.get(key, {}).get(column)

    return {
        "hookline_deliveries_per_s": get("throughput_single", "hookline"),
        "hookline_batch_deliveries_per_s": get("throughput_batch", "hookline"),
        "naive_deliveries_per_s": get("throughput_single", "naive"),
        "ratio": get("throughput_single", "ratio"),
        "batch_ratio": get("throughput_batch", "ratio"),
        "hookline_drain_deliveries_per_s": get("drain", "hookline"),
        "naive_drain_deliveries_per_s": get("drain", "naive"),
        "drain_ratio": get("drain", "ratio"),
        "targets": {key: {"target": row["target"], "status": row["status"]}
                    for key, row in rows.items()},
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:,.1f}"


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b when both are positive (a shrinking memory reading has no meaningful ratio)."""
    return round(a / b, 2) if a is not None and b is not None and a > 0 and b > 0 else None


def find(report: dict[str, Any], **match: Any) -> dict[str, Any] | None:
    return next((r for r in report.get("runs", [])
                 if all(r.get(k) == v for k, v in match.items())), None)


def figures(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: hookline, naive, ratio (hookline / naive, or as named), target."""
    rows: list[dict[str, Any]] = []
    s = report["settings"]

    def add(key: str, figure: str, unit: str, hookline: float | None, naive: float | None = None,
            rate: float | None = None, note: str = "") -> None:
        row: dict[str, Any] = {"key": key, "figure": figure, "unit": unit, "hookline": hookline,
                               "naive": naive, "ratio": rate, "note": note}
        target = TARGETS.get(key)
        row["target"] = target.text() if target else "not set"
        met = target.met(row) if target else None
        row["status"] = "-" if met is None else ("met" if met else "MISSED")
        rows.append(row)

    def rate_of(run: dict[str, Any] | None) -> float | None:
        return run["deliveries_per_s"] if run and run["completed"] else None

    sections = set(s["sections"])
    naive_tp = find(report, system="naive", section="throughput")
    if "throughput" in sections:
        batch = find(report, system="hookline", section="throughput", path="batch")
        single = find(report, system="hookline", section="throughput", path="single")
        n = rate_of(naive_tp)
        batch_note = "" if batch else "n/a: publish_many not available"
        add("throughput_batch", "throughput, publish_many", "dlv/s", rate_of(batch), n,
            ratio(rate_of(batch), n), batch_note)
        add("throughput_single", "throughput, publish() each", "dlv/s", rate_of(single), n,
            ratio(rate_of(single), n))
    if "drain" in sections:
        h, n = (rate_of(find(report, system=x, section="drain")) for x in ("hookline", "naive"))
        add("drain", "workers alone (backlog drain)", "dlv/s", h, n, ratio(h, n))
    if "latency" in sections:
        lat = {x: find(report, system=x, section="latency") for x in ("hookline", "naive")}
        for q in ("p50", "p99"):
            h, n = ((lat[x] or {}).get("latency_ms", {}).get(q) for x in ("hookline", "naive"))
            add(f"latency_{q}", f"latency @{s['rate']:g}/s {q}", "ms", h, n, ratio(h, n))
    if "memory" in sections:
        mem = {m["system"]: m for m in report.get("memory", [])}
        h, n = mem.get("hookline"), mem.get("naive")

        def note(m: dict[str, Any] | None) -> str:
            return f"{m['attempted']:,}/{m['published']:,} attempted" if m else ""

        rss = [m and round(m["rss_increase"] / MB, 1) for m in (h, n)]
        used = [m and round(m["redis"]["used_increase"] / MB, 1) for m in (h, n)]
        add("memory_rss", f"worker RSS increase, {s['memory_events']:,} failing", "MB",
            rss[0], rss[1], ratio(rss[0], rss[1]),
            note=" · ".join(x for x in (f"hookline {note(h)}" if h else "",
                                          f"naive {note(n)}" if n else "") if x))
        keys = [m and round((m["redis"]["keys_bytes_after"] - m["redis"]["keys_bytes_before"]) / MB, 1)
                for m in (h, n)]
        add("memory_redis", "Redis used_memory increase (whole server)", "MB", used[0], used[1],
            ratio(used[0], used[1]))
        add("memory_redis_keys", "Redis, the run's own keys' growth", "MB", keys[0], keys[1],
            ratio(keys[0], keys[1]))
    iso = report.get("isolation")
    if "isolation" in sections and iso:
        add("isolation_throughput", "isolation: nine healthy keep dlv/s", "×",
            None, None, iso.get("throughput_kept"))
        add("isolation_p99", "isolation: nine healthy p99 growth", "×", None, None,
            iso.get("p99_ratio"), "lower bound" if iso.get("p99_ratio_lower_bound") else "")
    scale = report.get("scale")
    if "scale" in sections and scale:
        by = {r["workers"]: r["deliveries_per_s"] if r["completed"] else None for r in scale}
        low, high = min(by), max(by)
        add("scale", f"scale {high} vs {low} worker(s)", "dlv/s", by[high], None,
            ratio(by[high], by[low]), f"{low}: {fmt(by[low])} dlv/s")
    if "throughput" in sections:
        tp = (find(report, system="hookline", section="throughput", path="batch")
              or find(report, system="hookline", section="throughput", path="single"))
        h = (tp or {}).get("cpu_ms_per_delivery", {}).get("total")
        n = (naive_tp or {}).get("cpu_ms_per_delivery", {}).get("total")
        add("cpu", f"CPU per delivery ({tp['path'] if tp else '-'} throughput)", "ms", h, n,
            ratio(h, n))
    return rows


# -- printing -------------------------------------------------------------------------------
def print_report(report: dict[str, Any]) -> None:
    s = report["settings"]
    runs: list[dict[str, Any]] = report.get("runs", [])
    print()
    print(f"Hookline benchmark  nproc={report['machine']['nproc']}  sections={','.join(s['sections'])}"
          f"  workers={s['workers']} concurrency={s['concurrency']} ({s['pool']})"
          f"  events={s['events']}  naive=prefork c{s['naive_concurrency']}")
    if runs:
        print_runs(runs)
        print_cpu(runs)
    if report.get("memory"):
        print_memory(report["memory"], s)
    if report.get("isolation"):
        print_isolation(report["isolation"], runs)
    if report.get("scale"):
        print()
        print("Scale (throughput, " + ", ".join(f"{r['workers']} worker(s): "
                                                  f"{fmt(r['deliveries_per_s'])} dlv/s"
                                                  + (" [throughput run]" if r["reused"] else "")
                                                  for r in report["scale"]) + ")")
    print_figures(report["figures"])
    for note in report.get("notes", []):
        print(f"note: {note}")
    for run in runs:
        if run["message"]:
            print(f"{run['name']}: {run['message']}")
    for failure in report.get("failures", []):
        print(f"FAILED: {failure}")


def print_runs(runs: list[dict[str, Any]]) -> None:
    print()
    header = (f"{'run':<24}{'path':>12}{'done':>6}{'recv':>7}{'dup':>5}{'conns':>7}{'publish/s':>11}"
              f"{'deliv/s':>10}{'end':>5}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'cpu ms/dlv':>12}")
    print(header)
    print("-" * len(header))
    for r in runs:
        lat = r["latency_ms"]
        bound = ">" if r["latency_lower_bound"] else ""
        end = {"database": "sql", "receiver": "rcv", "end of wait": "cut"}.get(r["end_source"], "")
        print(f"{r['name']:<24}{r['path']:>12}{'yes' if r['completed'] else 'NO':>6}{r['received']:>7}"
              f"{r['duplicates']:>5}{r['connections']:>7}{fmt(r['publish_rate']):>11}"
              f"{fmt(r['deliveries_per_s']):>10}{end:>5}{bound + fmt(lat.get('p50')):>10}"
              f"{bound + fmt(lat.get('p99')):>10}{bound + fmt(lat.get('max')):>10}"
              f"{fmt(r['cpu_ms_per_delivery'].get('total'), 2):>12}")
    print("end: sql = until the last succeeded_at in PostgreSQL, rcv = last receipt, "
          "cut = end of a timed-out wait; '>' = lower bound")


def print_cpu(runs: list[dict[str, Any]]) -> None:
    parts = ("workers", "publisher", "postgres", "redis", "receiver", "other", "total")
    print()
    header = f"{'CPU ms per delivery':<24}" + "".join(f"{p:>11}" for p in parts)
    print(header)
    print("-" * len(header))
    for r in runs:
        cpu = r["cpu_ms_per_delivery"]  # empty when a drain was over before the workers answered
        print(f"{r['name']:<24}" + "".join(f"{fmt(cpu.get(p), 2):>11}" for p in parts))


def print_memory(memory: list[dict[str, Any]], s: dict[str, Any]) -> None:
    print()
    print(f"Memory: {s['memory_events']:,} deliveries to a receiver answering 503 "
          f"(RSS of each worker's process group, MB; Redis MB)")
    header = (f"{'system':<10}{'path':>12}{'published':>11}{'pub s':>8}{'attempted':>11}{'503s':>9}"
              f"{'wait s':>8}  {'worker':<22}{'before':>9}{'after':>9}{'+':>9}{'peak +':>9}")
    print(header)
    print("-" * len(header))
    for m in memory:
        lead = (f"{m['system']:<10}{m['path']:>12}{m['published']:>11,}{m['publish_seconds']:>8.1f}"
                f"{m['attempted']:>11,}{m['attempts']:>9,}{m['wait_seconds']:>8.1f}  ")
        for i, w in enumerate(m["workers"]):
            print((lead if i == 0 else " " * len(lead))
                  + f"{w['worker'][:22]:<22}{mb(w['before']):>9}{mb(w['after']):>9}"
                  f"{mb(w['increase']):>9}{mb(w['peak_increase']):>9}")
        r = m["redis"]
        print(f"{'':<10}Redis used_memory {mb(r['used_before'])} -> {mb(r['used_after'])} "
              f"(+{mb(r['used_increase'])}; whole server, shared); the run's keys "
              f"{r['keys_before']} -> {r['keys_after']}, {mb(r['keys_bytes_before'])} -> "
              f"{mb(r['keys_bytes_after'])}; wait ended: {m['ended_by']}")
        if m.get("states"):
            print(f"{'':<10}deliveries by state: "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(m["states"].items())))
        if m["message"]:
            print(f"{'':<10}{m['message']}")


def print_isolation(iso: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    print()
    shared = iso.get("sharing_hole_partition", [])
    print(f"Isolation: {iso['endpoints']} endpoints, endpoint {iso['black_holed']} black-holed in "
          f"phase 2; {iso['events_per_phase']} events per phase; endpoints sharing its partition "
          f"queue: {shared or 'none'}")
    for name in ("isolation healthy", "isolation black hole"):
        run = next((r for r in runs if r["name"] == name), None)
        if run is None:
            continue
        per = [v for k, v in run["per_target"].items() if int(k) != iso["black_holed"]]
        rates = [v["deliveries_per_s"] for v in per if v["deliveries_per_s"] is not None]
        p99s = [v["p99_ms"] for v in per if v["p99_ms"] is not None]
        bound = ">" if run["latency_lower_bound"] else ""
        print(f"  {name:<22} nine: {run['measured_received']:,}/{run['measured_events']:,} delivered, "
              f"{fmt(run['deliveries_per_s'])} dlv/s, p99 {bound}{fmt(run['latency_ms'].get('p99'))} ms"
              f"  (per endpoint: slowest {fmt(min(rates) if rates else None)} dlv/s, worst p99 "
              f"{fmt(max(p99s) if p99s else None)} ms)")
    if "hole_requests" in iso:
        print(f"  black-holed endpoint: {iso['hole_requests']} request(s) held, "
              f"{iso['hole_open_at_end']} still open at the end")
    print(f"  kept {fmt(iso.get('throughput_kept'), 2)}× of the healthy deliveries/s, "
          f"p99 {fmt(iso.get('p99_ratio'), 2)}× the healthy one")


def print_figures(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print()
    header = (f"{'figure':<42}{'unit':>6}{'hookline':>11}{'naive':>11}{'ratio':>8}"
              f"{'target':>10}{'status':>8}  note")
    print(header)
    print("-" * len(header))
    for row in rows:
        hook = "n/a" if row["hookline"] is None and row["note"].startswith("n/a") else \
            fmt(row["hookline"])
        print(f"{row['figure']:<42}{row['unit']:>6}{hook:>11}{fmt(row['naive']):>11}"
              f"{fmt(row['ratio'], 2):>8}{row['target']:>10}{row['status']:>8}  {row['note']}")
