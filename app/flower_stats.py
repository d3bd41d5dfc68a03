"""What Flower counted: delivery tasks processed and the deliveries they carried.

Flower shows one task per message, and a message carries many deliveries: each
``hookline.deliver`` task's result counts them (``{'deliveries': 3, 'succeeded': 3,
…}``, see ``workers/tasks.py``). :func:`read_flower` asks Flower's HTTP API
(``GET /api/tasks?taskname=hookline.deliver``; Flower needs ``FLOWER_BASIC_AUTH`` or
``FLOWER_UNAUTHENTICATED_API=true`` for it) and :func:`summarise`, which is pure, adds
those results up, so a demo can show the throughput Flower itself saw next to its own.
"""

from __future__ import annotations

import ast
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.names import DELIVER_TASK

#: Flower answers on loopback at once or not at all; a slow answer must not stall a live view.
FLOWER_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class FlowerCount:
    """Delivery tasks Flower saw succeed, and the deliveries their results say they carried."""

    tasks: int = 0
    deliveries: int = 0
    succeeded: int = 0

    def tasks_per_second(self, seconds: float) -> float:
        return self.tasks / seconds if seconds > 0 else 0.0


def _result_counts(result: object) -> Mapping[str, Any]:
    """A task result as Flower reports it (the ``repr`` of a dict, or the dict), else ``{}``."""
    if isinstance(result, Mapping):
        return result
    if isinstance(result, str):
        try:
            parsed = ast.literal_eval(result)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def summarise(tasks: Mapping[str, Any]) -> FlowerCount:
    """Add up ``/api/tasks``'s answer (task id → task): succeeded delivery tasks only."""
    done = [task for task in tasks.values()
            if isinstance(task, Mapping) and task.get("name", DELIVER_TASK) == DELIVER_TASK
            and task.get("state") == "SUCCESS"]
    results = [_result_counts(task.get("result")) for task in done]
    return FlowerCount(tasks=len(done),
                       deliveries=sum(_count(r.get("deliveries")) for r in results),
                       succeeded=sum(_count(r.get("succeeded")) for r in results))


def read_flower(port: int, *, timeout: float = FLOWER_TIMEOUT) -> FlowerCount | None:
    """What the Flower on 127.0.0.1:*port* counted; ``None`` while it does not answer."""
    url = f"http://127.0.0.1:{port}/api/tasks?taskname={DELIVER_TASK}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            found = json.loads(response.read())
    except (OSError, ValueError):  # not up yet, refused, or not JSON
        return None
    return summarise(found) if isinstance(found, Mapping) else None
