"""Attempt classification: which results succeed, which retry, which are permanent."""

from __future__ import annotations

import pytest

from app.classification import TransportError, Verdict, classify


class TestHttpStatus:
    """Every HTTP status maps to one verdict."""

    @pytest.mark.parametrize(
        ("status", "verdict"),
        [
            (200, Verdict.SUCCEEDED),
            (201, Verdict.SUCCEEDED),
            (204, Verdict.SUCCEEDED),
            (299, Verdict.SUCCEEDED),
            (408, Verdict.RETRY),
            (429, Verdict.RETRY),
            (500, Verdict.RETRY),
            (502, Verdict.RETRY),
            (503, Verdict.RETRY),
            (504, Verdict.RETRY),
            (400, Verdict.PERMANENT),
            (401, Verdict.PERMANENT),
            (403, Verdict.PERMANENT),
            (404, Verdict.PERMANENT),
            (409, Verdict.PERMANENT),
            (422, Verdict.PERMANENT),
            (410, Verdict.PERMANENT_DISABLE),
            (301, Verdict.RETRY),
            (302, Verdict.RETRY),
            (100, Verdict.RETRY),
        ],
    )
    def test_status_verdicts(self, status: int, verdict: Verdict) -> None:
        assert classify(status) is verdict

    def test_a_status_wins_over_a_transport_error(self) -> None:
        assert classify(200, TransportError.TIMEOUT) is Verdict.SUCCEEDED


class TestNoStatus:
    """Without a status the transport error decides: an unsendable or blocked request is permanent."""

    @pytest.mark.parametrize(
        ("error", "verdict"),
        [
            (TransportError.CONNECT, Verdict.RETRY),
            (TransportError.TIMEOUT, Verdict.RETRY),
            (TransportError.PROTOCOL, Verdict.RETRY),
            (None, Verdict.RETRY),
            (TransportError.INVALID_REQUEST, Verdict.PERMANENT),
            (TransportError.BLOCKED, Verdict.PERMANENT),
        ],
    )
    def test_transport_error_verdicts(self, error: TransportError | None, verdict: Verdict) -> None:
        assert classify(None, error) is verdict
