"""Group commit: concurrent calls run together, each caller gets its own result."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from app.engine.grouping import Group


class Recorder:
    """A slow batch function that records the groups it was called with."""

    def __init__(self, delay: float = 0.05, fail_on: int | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.groups: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("database refused")
        return [item * 10 for item in items]


def call_from_threads(group: Group[int, int], items: list[int]) -> dict[int, object]:
    results: dict[int, object] = {}

    def one(item: int) -> None:
        try:
            results[item] = group(item)
        except RuntimeError as exc:
            results[item] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for thread in threads:
        thread.start()
        time.sleep(0.002)
    for thread in threads:
        thread.join(5)
    return results


class TestGroup:
    """One caller leads; the calls that arrive meanwhile run together next."""

    def test_an_idle_call_runs_at_once_on_its_own(self) -> None:
        fn = Recorder(delay=0)
        assert Group(fn)(3) == 30
        assert fn.groups == [[3]]

    def test_calls_arriving_during_a_run_are_grouped_and_each_gets_its_result(self) -> None:
        fn = Recorder()
        results = call_from_threads(Group(fn), list(range(12)))
        assert results == {i: i * 10 for i in range(12)}
        assert len(fn.groups) < 12
        assert sorted(i for group in fn.groups for i in group) == list(range(12))
        assert max(len(group) for group in fn.groups) > 1

    def test_a_group_is_at_most_max_items(self) -> None:
        fn = Recorder()
        call_from_threads(Group(fn, max_items=3), list(range(10)))
        assert max(len(group) for group in fn.groups) <= 3

    def test_an_error_reaches_every_call_of_its_group_and_no_other(self) -> None:
        fn = Recorder(fail_on=5)
        results = call_from_threads(Group(fn), list(range(10)))
        failed = next(group for group in fn.groups if 5 in group)
        for item, result in results.items():
            if item in failed:
                assert isinstance(result, RuntimeError)
            else:
                assert result == item * 10

    def test_after_an_error_the_group_still_runs_new_calls(self) -> None:
        fn = Recorder(delay=0, fail_on=1)
        group = Group(fn)
        with pytest.raises(RuntimeError):
            group(1)
        assert group(2) == 20
