"""Nothing is lost when a worker dies mid-POST, Redis is flushed, or Redis restarts."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from app.receiver import Receiver, Route
from tests.integration.conftest import BROKERS, ROOT, PrivateRedis, Stack, env_for, free_port
from tests.integration.test_delivery_flow import delivery_rows, subscribe
from tests.support import wait_until

pytestmark = pytest.mark.integration


class TestWorkerKilledMidDelivery:
    """A SIGKILLed worker's in-flight delivery is recovered by the sweeper and delivered."""

    @pytest.mark.parametrize("broker", BROKERS, indirect=True)
    def test_sigkill_during_the_post_still_delivers(self, make_stack: Callable[..., Stack],
                                                    receiver: Receiver) -> None:
        stack = make_stack(read_timeout=3.0, connect_timeout=1.0, lease_seconds=2.0)
        route = Route(delay=2.5)
        endpoint = subscribe(stack, receiver, "/slow", route)
        first = stack.worker()
        event = stack.hookline.publish("acme", "crew.status.changed", {"crew_id": "c1"})
        wait_until(lambda: receiver.arrived.get("/slow", 0) >= 1, what="the POST to start")
        first.kill()
        route.delay = 0.0
        assert delivery_rows(stack, endpoint) == [("in_flight", 1, None)]

        stack.worker()
        wait_until(lambda: delivery_rows(stack, endpoint) == [("succeeded", 2, None)],
                   timeout=40, what="recovery after the lease expired")
        errors = [r[0] for r in stack.sql(
            "SELECT error_class FROM attempts WHERE delivery_id IN "
            "(SELECT id FROM deliveries WHERE endpoint_id = :e) ORDER BY id", e=endpoint)]
        assert errors == ["WorkerLost", None]
        assert event.event_id in receiver.accepted("/slow")


class TestBrokerLoss:
    """The database remembers what the broker forgets."""

    def test_flushall_mid_run_is_recovered_by_the_sweeper(
        self, make_stack: Callable[..., Stack], receiver: Receiver, private_redis: PrivateRedis,
    ) -> None:
        # redispatch_after is long, so only the broker-reset check can bring these back.
        stack = make_stack(broker_url=private_redis.url, broker_key_prefix="",
                           redispatch_after=600.0, worker_concurrency=1)
        subscribe(stack, receiver, "/backlog", Route(delay=0.2))
        stack.worker()
        wait_until(lambda: private_redis.client().exists("hookline:broker-epoch"),
                   what="the first sweep")
        events = [stack.hookline.publish("acme", "crew.status.changed", {"n": i}).event_id
                  for i in range(15)]
        wait_until(lambda: len(receiver.accepted("/backlog")) >= 2, what="the backlog to start")
        private_redis.client().flushall()
        wait_until(lambda: receiver.accepted("/backlog") == set(events), timeout=40,
                   what="every event after FLUSHALL")

    @pytest.mark.parametrize("pool", ["threads", "prefork"])
    def test_a_worker_holding_unacked_messages_survives_a_redis_restart(
        self, make_stack: Callable[..., Stack], receiver: Receiver, private_redis: PrivateRedis,
        pool: str,
    ) -> None:
        stack = make_stack(broker_url=private_redis.url, broker_key_prefix="",
                           redispatch_after=600.0, worker_concurrency=2, worker_pool=pool)
        subscribe(stack, receiver, "/steady", Route(delay=1.0))
        worker = stack.worker()
        events = [stack.hookline.publish("acme", "crew.status.changed", {"n": i}).event_id
                  for i in range(8)]
        wait_until(lambda: receiver.arrived.get("/steady", 0) >= 2,
                   what="the worker to hold messages")
        private_redis.restart(down_for=1.0)
        time.sleep(5)
        log = worker.log.read_text()
        assert worker.alive(), log[-3000:]
        assert "Unrecoverable error" not in log
        wait_until(lambda: receiver.accepted("/steady") == set(events), timeout=60,
                   what="every event after the restart")
        assert worker.alive()


class TestFlower:
    """Workers send task events, so Flower counts delivery tasks live, and each task's
    result says how many deliveries it carried."""

    @pytest.mark.parametrize("broker", BROKERS, indirect=True)
    def test_flower_counts_delivery_task_events(self, stack: Stack, receiver: Receiver) -> None:
        subscribe(stack, receiver, "/seen")
        port = free_port()
        env = {**env_for(stack.settings), "FLOWER_UNAUTHENTICATED_API": "true"}
        flower = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "flower", f"--port={port}"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            def metrics() -> str:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        return str(r.read().decode())
                except OSError:
                    return ""

            wait_until(lambda: "flower_events_total" in metrics() or
                       "# HELP flower_events_total" in metrics(), timeout=30, what="Flower up")
            stack.worker()
            for i in range(3):
                stack.hookline.publish("acme", "crew.status.changed", {"n": i})

            def succeeded() -> float:
                pattern = re.compile(r'flower_events_total\{[^}]*task="hookline\.deliver"'
                                     r'[^}]*type="task-succeeded"[^}]*\}\s+([0-9.e+]+)')
                return sum(float(m) for m in pattern.findall(metrics()))

            def tasks() -> dict[str, Any]:
                url = f"http://127.0.0.1:{port}/api/tasks?taskname=hookline.deliver"
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        found: dict[str, Any] = json.loads(response.read())
                        return found
                except OSError:
                    return {}

            def delivered_per_flower() -> int:
                # A message may carry several deliveries; each task's result counts them.
                results = [ast.literal_eval(t["result"]) for t in tasks().values()
                           if t["state"] == "SUCCESS" and t.get("result")]
                return sum(int(r.get("succeeded", 0)) for r in results)

            wait_until(lambda: succeeded() >= 1 and delivered_per_flower() >= 3, timeout=30,
                       what="Flower to see the 3 deliveries succeed")
            assert delivered_per_flower() == 3
        finally:
            flower.terminate()
            flower.wait(10)
