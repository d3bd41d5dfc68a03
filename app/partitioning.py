"""Partition choice: which delivery queue an endpoint's deliveries travel on.

A stable hash of the endpoint id modulo the partition count, so one subscriber's
backlog stays on one queue and never sits in front of every other subscriber.
Stable across processes and restarts (no ``hash()``, which is salted per process).
"""

from __future__ import annotations

import zlib

from app.names import partition_queue


def partition_for(endpoint_id: str, partitions: int) -> int:
    """The partition index in ``[0, partitions)`` for *endpoint_id*."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return zlib.crc32(endpoint_id.encode("utf-8")) % partitions


def queue_for(endpoint_id: str, partitions: int) -> str:
    return partition_queue(partition_for(endpoint_id, partitions))


def parse_partition_spec(spec: str, partitions: int) -> list[int]:
    """Parse ``"0-3,6"`` into ``[0, 1, 2, 3, 6]``; every index must be below *partitions*."""
    chosen: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                low_text, high_text = part.split("-", 1)
                low, high = int(low_text), int(high_text)
            else:
                low = high = int(part)
        except ValueError:
            raise ValueError(f"bad partition range {part!r}: use forms like 0-7 or 0,2,5") from None
        if low > high or low < 0 or high >= partitions:
            raise ValueError(
                f"partition range {part!r} is outside 0-{partitions - 1} (HOOKLINE_PARTITIONS={partitions})"
            )
        chosen.update(range(low, high + 1))
    if not chosen:
        raise ValueError("no partition selected")
    return sorted(chosen)
