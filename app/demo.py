"""The local stack a demo runs on: environment, child processes and verifying receivers.

A demo (``hookline demo`` runs the CrewPass one, :mod:`crewpass.demo`) needs the
same things as a deployment, on one machine: the embedded Redis unless a broker is
configured, the database migrated, a worker with the sweeper schedule, producers,
optionally Flower and ``hookline api`` (each on a loopback port, the configured one
when it is free), loopback receivers that verify every signature and dedupe on event
id, and a way to run any ``hookline`` command as an operator would, in the same
environment, with its output kept. This module provides them; it knows nothing of any
domain.

The receivers are plain http on 127.0.0.1, which the egress policy refuses by
default, so a demo allows plain http and adds 127.0.0.1 to ``HOOKLINE_EGRESS_ALLOW``
for its own processes (keeping whatever the environment already allows).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
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
#: Where a demo's own services (Flower, the API) listen: loopback only.
LOOPBACK = "127.0.0.1"
#: How long an operator command run by a demo may take before it counts as failed.
COMMAND_TIMEOUT = 60.0


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


def free_port(preferred: int) -> int:
    """*preferred* if nothing listens on it at 127.0.0.1, else a free port the system picks."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free loopback port")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True if a GET of *url* (a loopback service of the demo) answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return False


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A ``hookline …`` command a demo ran: what was typed, its exit code and its output."""

    args: tuple[str, ...]
    returncode: int
    output: str

    @property
    def command_line(self) -> str:
        return "hookline " + " ".join(self.args)


def run_hookline(env: Mapping[str, str], args: Sequence[str],
                 timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """Run ``hookline <args>`` as a child process in *env* (the demo's database and broker)."""
    try:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=dict(env),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout if isinstance(exc.stdout, str) else ""
        return CommandResult(tuple(args), -1, partial + f"\n(timed out after {timeout:.0f}s)")
    return CommandResult(tuple(args), done.returncode, (done.stdout + done.stderr).rstrip())


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

    def wait_for_http(self, url: str, timeout: float = 30.0) -> bool:
        """Wait until a GET of *url* answers 2xx; ``False`` if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_ok(url):
                return True
            if self.popen.poll() is not None:
                return False
            time.sleep(0.2)
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
    """The child processes of a demo; :meth:`stop_all` stops them all together."""

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

    def stop_all(self, grace: float = 15.0) -> None:
        """SIGTERM every child at once, then wait for each (SIGKILL once *grace* is over)."""
        running = [p for p in reversed(self.started) if p.popen.poll() is None]
        for process in running:
            process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(5)
