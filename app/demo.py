"""The local stack a demo runs on: environment, child processes and verifying receivers.

A demo (``hookline demo`` runs the CrewPass one, :mod:`crewpass.demo`) needs the
same things as a deployment, on one machine: the embedded Redis unless a broker is
configured, the database migrated, a worker with the sweeper schedule, producers,
optionally Flower, and loopback receivers that verify every signature and dedupe on
event id. This module provides them; it knows nothing of any domain.

The receivers are plain http on 127.0.0.1, which the egress policy refuses by
default, so a demo allows plain http and adds 127.0.0.1 to ``HOOKLINE_EGRESS_ALLOW``
for its own processes (keeping whatever the environment already allows).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.receiver import Verifier
from app.verify import VerificationError, verify
from config.settings import Settings, get_settings

#: Settings a demo uses unless the environment already sets them: quick retries and polls.
DEMO_DEFAULTS = {"HOOKLINE_RETRY_BASE_SECONDS": "1", "HOOKLINE_RETRY_JITTER": "0.1",
                 "HOOKLINE_SWEEP_INTERVAL": "1", "HOOKLINE_LOG_LEVEL": "WARNING",
                 "HOOKLINE_PRODUCER_POLL_INTERVAL": "0.1"}
#: Where a demo's receivers listen; the only network a demo adds to the allow-list.
DEMO_RECEIVER_NETWORK = "127.0.0.1/32"


def receiver_access(settings: Settings) -> dict[str, str]:
    """The variables that let deliveries reach a demo's loopback receivers over plain http."""
    allowed = [*settings.egress_allow]
    if DEMO_RECEIVER_NETWORK not in allowed:
        allowed.append(DEMO_RECEIVER_NETWORK)
    return {"HOOKLINE_ALLOW_HTTP": "true", "HOOKLINE_EGRESS_ALLOW": ",".join(allowed)}


def demo_environment(settings: Settings) -> tuple[dict[str, str], Settings]:
    """The environment for a demo's child processes, and the settings this process then uses.

    Applies :data:`DEMO_DEFAULTS` where unset and :func:`receiver_access`, here and in
    the children, and pins the data directory so every process shares one database.
    """
    env = dict(os.environ)
    for key, value in DEMO_DEFAULTS.items():
        env.setdefault(key, value)
    access = receiver_access(settings)
    env.update(access)
    env["HOOKLINE_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ.update({k: env[k] for k in DEMO_DEFAULTS} | access)
    resolved = get_settings(data_dir=settings.data_dir.resolve())
    resolved.data_dir.mkdir(parents=True, exist_ok=True)
    return env, resolved


def verifier(secret: str, contract: str = "crewpass") -> Verifier:
    """A receiver check: the request verifies under *contract* with *secret* (:mod:`app.verify`)."""
    def check(headers: Mapping[str, str], body: bytes) -> bool:
        try:
            verify(contract, secret, headers, body)
        except VerificationError:
            return False
        return True

    return check


@dataclass
class Process:
    """A ``hookline …`` child process, its output in ``<data dir>/demo-<name>.log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def wait_for(self, marker: str, timeout: float = 30.0) -> bool:
        """Wait until *marker* appears in the log; ``False`` if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.encode() in self.log.read_bytes():
                return True
            if self.popen.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


@dataclass
class Processes:
    """The child processes of a demo; :meth:`stop_all` stops them, last started first."""

    env: Mapping[str, str]
    settings: Settings
    started: list[Process] = field(default_factory=list)

    def spawn(self, name: str, *args: str, extra_env: Mapping[str, str] | None = None) -> Process:
        path = self.settings.data_dir / f"demo-{name}.log"
        log = open(path, "wb")  # noqa: SIM115 - lives with the child
        popen = subprocess.Popen([sys.executable, "-m", "app.cli", *args],
                                 env={**self.env, **(extra_env or {})},
                                 stdout=log, stderr=subprocess.STDOUT)
        process = Process(name, popen, path)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()
