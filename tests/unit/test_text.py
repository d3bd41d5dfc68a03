"""Text that cannot be stored is named with the character that makes it so."""

from __future__ import annotations

import pytest

from app.text import text_problem


class TestTextProblem:
    """A lone surrogate and NUL are never storable; other controls only in free text."""

    @pytest.mark.parametrize(("value", "strict", "free_text"), [
        ("plain", None, None),
        ("caf\u00e9 \u20ac \U0001f600", None, None),
        ("two\nlines\ttabbed", "has the control character '\\n'", None),
        ("a\x7fb", "has the control character '\\x7f'", None),
        ("nul\x00", "has the control character '\\x00'", "has the control character '\\x00'"),
        ("half \ud800", "has the lone surrogate '\\ud800', which is not Unicode text",
         "has the lone surrogate '\\ud800', which is not Unicode text"),
        ("escaped \udcff byte", "has the lone surrogate '\\udcff', which is not Unicode text",
         "has the lone surrogate '\\udcff', which is not Unicode text"),
    ], ids=["ascii", "non-ascii", "line-break", "del", "nul", "high-surrogate",
            "surrogate-escaped-byte"])
    def test_each_value_is_judged_strictly_and_as_free_text(
        self, value: str, strict: str | None, free_text: str | None
    ) -> None:
        assert text_problem(value) == strict
        assert text_problem(value, allow_controls=True) == free_text
