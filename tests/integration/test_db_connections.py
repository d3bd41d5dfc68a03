"""Pooled PostgreSQL connections: a dead one is replaced before anyone uses it."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from app import db
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


class TestIdleConnections:
    """A connection the server closed while it sat in the pool costs the caller nothing."""

    def test_a_connection_killed_while_idle_is_replaced_at_checkout(
        self, stack: Stack, pg_url: str
    ) -> None:
        engine = db.create_engine_for(stack.settings)
        try:
            with engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with psycopg.connect(pg_url, autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
            time.sleep(db.PING_AFTER_IDLE_SECONDS + 0.2)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        finally:
            engine.dispose()
