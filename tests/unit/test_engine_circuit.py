"""The circuit breaker of one endpoint, as pure functions of its stored state and the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.classification import TransportError
from app.engine.circuit import (
    Circuit,
    CircuitPolicy,
    CircuitState,
    is_failure,
    observe,
    start_probe,
)
from tests.unit.conftest import T0

POLICY = CircuitPolicy(failure_threshold=3, cooloff_seconds=15.0, max_cooloff_seconds=100.0)
TICK = timedelta(microseconds=1)


def after(circuit: Circuit, *failed: bool, now: datetime = T0) -> Circuit:
    """The breaker after the results *failed* (True for a failure), all observed at *now*."""
    for one in failed:
        circuit = observe(circuit, one, now, POLICY)
    return circuit


def opened(cooloff: float = 15.0, failures: int = 3) -> Circuit:
    """A circuit that opened at T0 with *cooloff*."""
    return Circuit(CircuitState.OPEN, failures, cooloff, T0 + timedelta(seconds=cooloff))


class TestClosed:
    """A closed circuit counts failures in a row and opens at the threshold."""

    def test_successes_keep_a_fresh_circuit_closed_and_unchanged(self) -> None:
        fresh = Circuit()
        assert after(fresh, False, False, False) is fresh
        assert fresh.state is CircuitState.CLOSED
        assert not fresh.blocks(T0)
        assert not fresh.probe_due(T0)

    def test_one_failure_short_of_the_threshold_keeps_it_closed(self) -> None:
        circuit = after(Circuit(), True, True)
        assert circuit == Circuit(CircuitState.CLOSED, 2, 0.0, None)
        assert not circuit.blocks(T0)

    def test_the_threshold_failure_opens_it_for_the_first_cool_off(self) -> None:
        circuit = after(Circuit(), True, True, True)
        assert circuit == Circuit(CircuitState.OPEN, 3, 15.0, T0 + timedelta(seconds=15))

    def test_a_success_resets_the_failures_in_a_row(self) -> None:
        circuit = after(Circuit(), True, True, False, True, True)
        assert circuit.state is CircuitState.CLOSED
        assert circuit.failures == 2

    def test_a_threshold_of_one_opens_at_the_first_failure(self) -> None:
        circuit = observe(Circuit(), True, T0, CircuitPolicy(failure_threshold=1))
        assert circuit.state is CircuitState.OPEN
        assert circuit.retry_at == T0 + timedelta(seconds=CircuitPolicy().cooloff_seconds)


class TestOpen:
    """An open circuit blocks until its cool-off ends, then lets one probe go."""

    def test_it_blocks_until_the_cool_off_ends(self) -> None:
        circuit = opened()
        assert circuit.blocks(T0)
        assert circuit.blocks(T0 + timedelta(seconds=15) - TICK)
        assert not circuit.probe_due(T0 + timedelta(seconds=15) - TICK)

    def test_a_probe_is_due_from_the_end_of_the_cool_off(self) -> None:
        circuit = opened()
        for now in (T0 + timedelta(seconds=15), T0 + timedelta(hours=1)):
            assert not circuit.blocks(now)
            assert circuit.probe_due(now)

    def test_a_late_failure_during_the_cool_off_neither_closes_nor_extends_it(self) -> None:
        circuit = after(opened(), True, now=T0 + timedelta(seconds=5))
        assert circuit == Circuit(CircuitState.OPEN, 4, 15.0, T0 + timedelta(seconds=15))

    def test_a_failure_after_the_cool_off_reopens_it_for_twice_as_long(self) -> None:
        now = T0 + timedelta(seconds=20)
        circuit = after(opened(), True, now=now)
        assert circuit == Circuit(CircuitState.OPEN, 4, 30.0, now + timedelta(seconds=30))

    def test_a_success_closes_it_and_forgets_the_failures(self) -> None:
        assert after(opened(), False, now=T0 + timedelta(seconds=20)) == Circuit()


class TestHalfOpen:
    """A probe under way blocks everyone else; its verdict closes or reopens the circuit."""

    def test_starting_a_probe_makes_it_half_open_until_the_probe_counts_as_lost(self) -> None:
        now = T0 + timedelta(seconds=15)
        probing = start_probe(opened(), now, 65.0)
        assert probing.state is CircuitState.HALF_OPEN
        assert probing.retry_at == now + timedelta(seconds=65)
        assert (probing.failures, probing.cooloff_seconds) == (3, 15.0)
        assert probing.blocks(now)
        assert not probing.probe_due(now + timedelta(seconds=65) - TICK)
        assert probing.probe_due(now + timedelta(seconds=65))

    def test_a_successful_probe_closes_the_circuit(self) -> None:
        probing = start_probe(opened(), T0 + timedelta(seconds=15), 65.0)
        assert after(probing, False) == Circuit()

    def test_a_failed_probe_reopens_it_with_the_cool_off_doubled(self) -> None:
        now = T0 + timedelta(seconds=16)
        probing = start_probe(opened(), T0 + timedelta(seconds=15), 65.0)
        circuit = after(probing, True, now=now)
        assert circuit == Circuit(CircuitState.OPEN, 4, 30.0, now + timedelta(seconds=30))

    @pytest.mark.parametrize(("cooloff", "doubled"), [(30.0, 60.0), (60.0, 100.0),
                                                      (100.0, 100.0)])
    def test_the_doubled_cool_off_is_capped_at_the_maximum(self, cooloff: float,
                                                           doubled: float) -> None:
        probing = start_probe(opened(cooloff), T0 + timedelta(seconds=cooloff), 65.0)
        circuit = after(probing, True)
        assert circuit.cooloff_seconds == doubled
        assert circuit.retry_at == T0 + timedelta(seconds=doubled)

    def test_a_stored_circuit_without_a_cool_off_doubles_the_policy_s(self) -> None:
        bare = Circuit(CircuitState.HALF_OPEN, 3, 0.0, T0)
        assert after(bare, True).cooloff_seconds == 30.0


class TestIsFailure:
    """Only results that say the receiver is unwell count against its circuit."""

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408])
    def test_server_errors_and_request_timeouts_are_failures(self, status: int) -> None:
        assert is_failure(status, None)

    @pytest.mark.parametrize("status", [200, 201, 204, 299, 400, 401, 404, 409, 410, 422, 429])
    def test_acceptances_and_rejections_are_not(self, status: int) -> None:
        assert not is_failure(status, None)

    @pytest.mark.parametrize("error", [TransportError.TIMEOUT, TransportError.CONNECT,
                                       TransportError.PROTOCOL])
    def test_timeouts_refused_connections_and_broken_answers_are_failures(
        self, error: TransportError
    ) -> None:
        assert is_failure(None, error)

    @pytest.mark.parametrize("error", [TransportError.BLOCKED, TransportError.INVALID_REQUEST])
    def test_requests_refused_before_reaching_the_receiver_are_not(
        self, error: TransportError
    ) -> None:
        assert not is_failure(None, error)
