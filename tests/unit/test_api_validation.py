"""A 422 for a refused request always renders, whatever the request held."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.validation import error_view


class Body(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    name: str = Field(pattern=r"^[^\x00]*$")
    timeout: float = Field(gt=0)


def refusal(body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as refused:
        Body.model_validate(body)
    return [error_view(error) for error in refused.value.errors()]


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"d": value}
    return value


class TestErrorView:
    """Type, location and message always; the refused value only when JSON can carry it."""

    @pytest.mark.parametrize(("body", "expected"), [
        ({"name": "ok", "timeout": -1},
         [{"type": "greater_than", "loc": ["timeout"], "msg": "Input should be greater than 0",
           "input": -1, "ctx": {"gt": 0.0}}]),
        ({"name": "ok", "timeout": float("nan")},
         [{"type": "finite_number", "loc": ["timeout"], "msg": "Input should be a finite number"}]),
        ({"name": "a\ud800", "timeout": 1},
         [{"type": "string_unicode", "loc": ["name"],
           "msg": "Input should be valid Unicode text: a lone surrogate such as \\ud800 "
                  "has no UTF-8 form"}]),
        ({"name": "ok", "timeout": 1, "x": deep(5000)},
         [{"type": "extra_forbidden", "loc": ["x"], "msg": "Extra inputs are not permitted"}]),
    ], ids=["plain", "nan", "lone-surrogate", "nested-5000-deep"])
    def test_each_error_renders_as_utf8_json(self, body: dict[str, Any],
                                             expected: list[dict[str, Any]]) -> None:
        views = refusal(body)
        assert views == expected
        json.dumps(views, allow_nan=False, ensure_ascii=False).encode("utf-8")

    def test_text_utf8_cannot_carry_is_escaped_and_its_value_left_out(self) -> None:
        view = error_view({"type": "value_error", "loc": ("body", "headers", "\udcff"),
                           "msg": "Value error, bad \ud800", "input": "\ud800",
                           "ctx": {"error": ValueError("bad")}})
        assert view == {"type": "value_error", "loc": ["body", "headers", "\\udcff"],
                        "msg": "Value error, bad \\ud800", "ctx": {"error": {}}}
