"""Identifiers: prefixed, fixed-length, ULID-shaped and time-ordered."""

from __future__ import annotations

import re
import time

import pytest

from app.ids import new_id

CROCKFORD = r"[0-9A-HJKMNP-TV-Z]"


class TestNewId:
    """new_id gives '<prefix>_' then 26 Crockford base-32 characters, time first."""

    @pytest.mark.parametrize("prefix", ["evt", "dlv", "ep", "tnt"])
    def test_prefix_and_length(self, prefix: str) -> None:
        value = new_id(prefix)
        assert value.startswith(prefix + "_")
        assert len(value) == len(prefix) + 1 + 26
        assert re.fullmatch(rf"{prefix}_{CROCKFORD}{{26}}", value)

    def test_the_time_part_is_ulid_encoded(self) -> None:
        # The ULID specification's example timestamp, 1469918176385 ms, encodes as 01ARYZ6S41.
        assert new_id("evt", now_ms=1469918176385, randomness=0) == "evt_01ARYZ6S410000000000000000"

    def test_the_extremes_encode_to_all_zeros_and_all_max(self) -> None:
        assert new_id("x", now_ms=0, randomness=0) == "x_" + "0" * 26
        assert new_id("x", now_ms=2**48 - 1, randomness=2**80 - 1) == "x_7" + "Z" * 25

    def test_a_later_millisecond_sorts_after_whatever_the_random_part(self) -> None:
        earlier = new_id("evt", now_ms=1_780_000_000_000, randomness=2**80 - 1)
        later = new_id("evt", now_ms=1_780_000_000_001, randomness=0)
        assert earlier < later

    def test_ids_sort_in_time_order(self) -> None:
        stamps = [1_780_000_000_000 + step * 37 for step in range(50)]
        ids = [new_id("dlv", now_ms=ms, randomness=(ms * 7919) % 2**80) for ms in stamps]
        assert sorted(ids) == ids

    def test_the_default_clock_is_the_current_time(self) -> None:
        before = int(time.time() * 1000)
        value = new_id("evt")
        after = int(time.time() * 1000)
        assert new_id("evt", now_ms=before, randomness=0) <= value
        assert value <= new_id("evt", now_ms=after, randomness=2**80 - 1)

    def test_ids_made_in_the_same_millisecond_differ(self) -> None:
        ids = {new_id("evt", now_ms=1_780_000_000_000) for _ in range(100)}
        assert len(ids) == 100
