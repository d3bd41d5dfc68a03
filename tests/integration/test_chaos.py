"""Every fault of bench/chaos.py, in its short version: nothing lost, recovery in seconds.

One stack (its own PostgreSQL cluster and redis-server, two workers, beat, the API) takes
each fault in turn: worker SIGKILLs, a Redis FLUSHALL, a Redis restart, a PostgreSQL
restart, all three in one run, a receiver in chaos, and a poison delivery. The script
prints its table; this test fails on any scenario that lost a delivery, recovered later
than its limit, or left a delivery unfinished.
"""

from __future__ import annotations

import shutil

import pytest

from bench import chaos


def test_every_fault_recovers_in_seconds_and_loses_nothing(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    if shutil.which("initdb") is None and not list(chaos.PG_BIN.glob("*/bin/initdb")):
        pytest.skip("PostgreSQL server binaries (initdb) are not installed here")
    results = chaos.run(None, short=True)
    table = chaos.report(results)
    with capsys.disabled():
        print("\n" + table)
    assert [r.name for r in results] == [s.name for s in chaos.scenarios(short=True)]
    for result in results:
        assert result.lost == 0, table
        assert result.passed, table
        assert set(result.states) <= {"succeeded", "dead"}, table
