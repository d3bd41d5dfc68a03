"""Partition choice: stable, in range, spread out; and partition specs for workers."""

from __future__ import annotations

from collections import Counter

import pytest

from app.ids import new_id
from app.partitioning import parse_partition_spec, partition_for, queue_for

#: Deterministic endpoint-shaped ids.
IDS = [new_id("ep", now_ms=1_780_000_000_000 + i, randomness=i * 7919) for i in range(1000)]


class TestPartitionFor:
    """An endpoint always lands on the same partition, and endpoints spread evenly."""

    @pytest.mark.parametrize(
        ("endpoint_id", "partitions", "expected"),
        [("ep_01TEST", 8, 4), ("acme", 8, 6), ("acme", 16, 14),
         ("ep_01JZ000000000000000000000", 8, 2), ("anything", 1, 0)],
    )
    def test_the_partition_is_pinned(self, endpoint_id: str, partitions: int,
                                     expected: int) -> None:
        # Literal values: a salted hash() or a changed algorithm would move them.
        assert partition_for(endpoint_id, partitions) == expected

    def test_repeated_calls_agree(self) -> None:
        assert [partition_for(i, 8) for i in IDS] == [partition_for(i, 8) for i in IDS]

    @pytest.mark.parametrize("partitions", [1, 3, 8, 1024])
    def test_the_partition_is_in_range(self, partitions: int) -> None:
        assert all(0 <= partition_for(i, partitions) < partitions for i in IDS)

    def test_ids_spread_across_all_partitions(self) -> None:
        counts = Counter(partition_for(i, 8) for i in IDS)
        assert set(counts) == set(range(8))
        assert min(counts.values()) > 60

    @pytest.mark.parametrize("partitions", [0, -1])
    def test_fewer_than_one_partition_is_refused(self, partitions: int) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            partition_for("ep_01TEST", partitions)


class TestQueueFor:
    """The queue of an endpoint is hookline.p<partition>."""

    def test_the_queue_is_named_after_the_partition(self) -> None:
        assert queue_for("ep_01TEST", 8) == "hookline.p4"
        assert queue_for("acme", 16) == "hookline.p14"

    def test_every_queue_name_matches_its_partition(self) -> None:
        assert all(queue_for(i, 8) == f"hookline.p{partition_for(i, 8)}" for i in IDS[:100])


class TestParsePartitionSpec:
    """Worker partition specs are ranges and lists of indexes below the partition count."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [("0-3,6", [0, 1, 2, 3, 6]), ("2", [2]), ("7", [7]), ("0-7", list(range(8))),
         (" 1 , 0-1 ", [0, 1]), ("5,5,4", [4, 5]), ("3-3", [3])],
    )
    def test_valid_specs(self, spec: str, expected: list[int]) -> None:
        assert parse_partition_spec(spec, 8) == expected

    @pytest.mark.parametrize(
        ("spec", "message"),
        [("8", "outside 0-7"), ("0-8", "outside 0-7"), ("3-1", "outside"), ("x", "bad partition"),
         ("1-x", "bad partition"), ("-1", "bad partition"), ("", "no partition"),
         (" , ", "no partition")],
    )
    def test_invalid_specs_are_refused(self, spec: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_partition_spec(spec, 8)
