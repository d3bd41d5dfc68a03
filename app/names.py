"""Names on the wire to the broker: queues, tasks and Redis keys, all in one place."""

from __future__ import annotations

from config.settings import QUEUE_PREFIX

DELIVER_TASK = "hookline.deliver"
DEAD_LETTER_TASK = "hookline.dead_letter"
SWEEP_TASK = "hookline.sweep"
REPLAY_TASK = "hookline.replay"
PRUNE_TASK = "hookline.prune"

#: Receives a message for every delivery that is dead-lettered (the row is the record).
DEAD_LETTER_QUEUE = f"{QUEUE_PREFIX}.dead"
#: Sweeper runs; every worker consumes it unless told otherwise.
MAINTENANCE_QUEUE = f"{QUEUE_PREFIX}.maintenance"

#: Set by the sweeper; gone means the broker lost its data (flush or restart).
BROKER_EPOCH_KEY = f"{QUEUE_PREFIX}:broker-epoch"


def partition_queue(partition: int) -> str:
    return f"{QUEUE_PREFIX}.p{partition}"


def rate_limit_key(prefix: str, endpoint_id: str) -> str:
    """The Redis hash holding *endpoint_id*'s rate-limit bucket, under the broker key prefix."""
    return f"{prefix}{QUEUE_PREFIX}:ratelimit:{endpoint_id}"
