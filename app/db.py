"""Database edge: engine and session factory for the configured URL, and migrations.

Engines are built by :func:`create_engine_for` when asked, never at import; worker
processes build their own after fork.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
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
    return create_engine(target, pool_pre_ping=True, pool_size=10, max_overflow=20)


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
