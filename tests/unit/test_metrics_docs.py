"""The Grafana dashboard and the alert rules in docs/ only use series Hookline exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fakeredis
import yaml
from prometheus_client import CollectorRegistry

from app.brokers import RedisBroker
from app.engine.pipeline import BatchOutcome
from app.observability.collector import StateCollector
from app.observability.recorder import Recorder
from app.sweeper import SweepReport
from tests.unit.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"\bhookline_[a-z_]+\b")


def exposed_series(harness: Harness) -> set[str]:
    recorder = Recorder()
    recorder.outcomes([], [], BatchOutcome())
    recorder.sweep(SweepReport())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(harness.settings, lambda: harness.engine,
                                     lambda: RedisBroker(fakeredis.FakeRedis())))
    names: set[str] = set()
    for source in (recorder.registry, registry):
        for family in source.collect():
            names.add(family.name)
            names |= {sample.name for sample in family.samples}
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


def expressions() -> dict[str, list[str]]:
    dashboard = json.loads((ROOT / "docs/grafana/hookline.json").read_text())
    rules = yaml.safe_load((ROOT / "docs/prometheus/alerts.yml").read_text())
    return {
        "dashboard": [t["expr"] for p in dashboard["panels"] for t in p["targets"]],
        "alerts": [r["expr"] for g in rules["groups"] for r in g["rules"]],
    }


def test_every_series_the_dashboard_and_alerts_use_is_exposed(harness: Harness) -> None:
    exposed = exposed_series(harness)
    for source, exprs in expressions().items():
        used = {name for expr in exprs for name in SERIES.findall(expr)}
        assert used, source
        assert used <= exposed, f"{source} uses {sorted(used - exposed)}"


def test_the_two_documented_alerts_watch_the_oldest_delivery_and_endpoint_success() -> None:
    alerts = expressions()["alerts"]
    assert "hookline_oldest_undelivered_age_seconds > 300" in alerts
    assert "hookline_endpoint_success_ratio < 0.5" in alerts
