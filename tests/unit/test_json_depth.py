"""JSON nesting is measured without recursion, so no depth can exhaust the stack."""

from __future__ import annotations

from typing import Any

import pytest

from app.json_depth import MAX_JSON_DEPTH, json_depth


def chain(depth: int) -> Any:
    value: Any = None
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


class TestDepth:
    """Objects and arrays count one level each; anything else counts none."""

    @pytest.mark.parametrize(("value", "depth"), [
        (1, 0), ("text", 0), (None, 0), ({}, 1), ([], 1), ((), 1),
        ({"a": 1, "b": [2, {"c": 3}]}, 3), ([[], [[]], []], 3), ({"deep": chain(10)}, 11),
    ], ids=["number", "string", "null", "empty-object", "empty-array", "tuple", "mixed",
            "widest-branch-wins", "chain"])
    def test_each_container_adds_a_level(self, value: Any, depth: int) -> None:
        assert json_depth(value) == depth

    def test_the_limit_is_64(self) -> None:
        assert MAX_JSON_DEPTH == 64
        assert json_depth(chain(64)) == 64

    @pytest.mark.parametrize("depth", [65, 900, 200_000])
    def test_the_walk_stops_one_level_past_the_limit_whatever_the_depth(self, depth: int) -> None:
        assert json_depth(chain(depth)) == MAX_JSON_DEPTH + 1

    def test_a_smaller_limit_is_honoured(self) -> None:
        assert json_depth(chain(10), limit=3) == 4
