"""Database edge: engine and session factory for the configured URL, and migrations.

Engines are built by :func:`create_engine_for` when asked, never at import; worker
processes build their own after fork.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_engine_for(settings: Settings, url: str | None = None) -> Engine:
    """An engine for the settings' database (or *url*); SQLite gets WAL and a busy timeout."""
    target = url or settings.resolved_database_url
    if target.startswith("sqlite"):
        if settings.embedded_database and url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(target, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(target, pool_size=10, max_overflow=20)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    event.listen(engine.pool, "checkin", _note_checkin)
    return engine


#: A pooled connection idle longer than this is pinged before use; one used more
#: recently is trusted (a busy worker would otherwise pay a round trip per transaction).
PING_AFTER_IDLE_SECONDS = 1.0


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling, as ``pool_pre_ping`` does, for idle connections only.

    A connection that fails the ping is discarded (``DisconnectionError``) and the pool
    hands out a fresh one, so a restarted database costs no caller an error.
    """
    idle_since = record.info.get("checked_in")
    if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        if not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.rollback()
    except Exception as exc:
        raise DisconnectionError(f"connection failed its ping: {exc}") from exc


def unreachable(exc: BaseException) -> bool:
    """True when *exc* says the database could not be reached (down, restarting, the
    connection cut), as opposed to the database refusing a statement."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for *engine*; an endpoint changed through them bumps its tenant's
    endpoints version in the same flush (:mod:`app.subscribers`)."""
    from app.subscribers import endpoint_changes_bump_the_version

    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "before_flush", endpoint_changes_bump_the_version)
    return factory


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head", url: str | None = None) -> None:
    """Bring the database schema to *revision* (``hookline db upgrade``)."""
    target = url or settings.resolved_database_url
    if settings.embedded_database and url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(target), revision)
