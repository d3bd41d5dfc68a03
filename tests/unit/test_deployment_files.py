"""docker-compose.yml and the Dockerfile, read as an operator's ``docker compose up`` would run
them: real commands, a writable data directory, credentials taken from the environment, and
every package in the image."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from app.cli import cli
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
#: ``${NAME:?message}``: compose refuses to start while NAME is unset or empty.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]*\}$")
#: Settings that are credentials: the API must not start without them in a deployment.
CREDENTIAL_SETTING = re.compile(r"_(key|token|secret)$")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def hookline_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository (they run ``hookline``)."""
    return {name: s for name, s in services().items() if "build" in s}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    raw = service.get("command")
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw or []]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, rest in dockerfile():
        if instruction == "ENV":
            for part in shlex.split(rest):
                if "=" in part:
                    key, value = part.split("=", 1)
                    env[key] = value
    return env


def image_user() -> str:
    users = [rest.split(":")[0] for instruction, rest in dockerfile() if instruction == "USER"]
    assert users, "the image has no USER: it would run as root"
    return users[-1]


def runs() -> str:
    return "\n".join(rest for instruction, rest in dockerfile() if instruction == "RUN")


class TestServiceCommands:
    """Every service built from this repository runs a command the ``hookline`` CLI has."""

    @pytest.mark.parametrize("name", sorted(hookline_services()))
    def test_the_command_is_a_registered_hookline_command_with_real_options(self, name: str
                                                                             ) -> None:
        argv = command(hookline_services()[name])
        assert argv and argv[0] == "hookline", f"{name}: {argv}"
        # Typer's command tree (click's classes); a group is a command with subcommands.
        current: Any = typer.main.get_command(cli)
        words = iter(argv[1:])
        rest: list[str] = []
        for word in words:
            if hasattr(current, "commands"):
                assert word in current.commands, f"{name}: no command {word!r} in {argv}"
                current = current.commands[word]
            else:
                rest = [word, *words]
        assert not hasattr(current, "commands"), f"{name}: {argv} names a group, not a command"
        options = {opt for param in current.params for opt in param.opts}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in options, f"{name}: {current.name} has no {word}"

    def test_every_hookline_setting_in_the_file_is_one_the_settings_know(self) -> None:
        known = {f"HOOKLINE_{field.upper()}" for field in Settings.model_fields}
        for name, service in hookline_services().items():
            unknown = {k for k in environment(service) if k.startswith("HOOKLINE_")} - known
            assert not unknown, f"{name}: unknown settings {unknown} (hookline refuses to start)"

    def test_no_comment_calls_a_service_a_placeholder(self) -> None:
        assert "placeholder" not in (ROOT / "docker-compose.yml").read_text().lower()


class TestDataDirectory:
    def test_the_image_runs_as_a_dedicated_user_that_it_creates(self) -> None:
        user = image_user()
        assert user not in ("root", "0", "nobody"), user
        assert re.search(rf"\b(useradd|adduser)\b[^\n]*\b{re.escape(user)}\b", runs()), runs()

    def test_the_data_directory_exists_and_belongs_to_the_images_user(self) -> None:
        data_dir = image_env().get("HOOKLINE_DATA_DIR")
        assert data_dir, "the image sets no HOOKLINE_DATA_DIR"
        user, script = image_user(), runs()
        created = re.search(rf"mkdir\s+(-\S+\s+)*[^\n;&]*{re.escape(data_dir)}\b", script)
        owned = re.search(rf"chown\s+(-\S+\s+)*{re.escape(user)}(:\S+)?\s+[^\n;&]*"
                          rf"{re.escape(data_dir)}\b", script)
        installed = re.search(rf"install\s[^\n;&]*-d[^\n;&]*-o\s+{re.escape(user)}[^\n;&]*"
                              rf"{re.escape(data_dir)}\b", script)
        assert (created and owned) or installed, script

    def test_beat_and_workers_keep_the_images_data_directory(self) -> None:
        for name, service in hookline_services().items():
            assert "HOOKLINE_DATA_DIR" not in environment(service) or (
                environment(service)["HOOKLINE_DATA_DIR"] == image_env()["HOOKLINE_DATA_DIR"]), name


class TestCredentials:
    """Published services need credentials, and those come from the environment."""

    def test_flower_needs_basic_auth_from_the_environment(self) -> None:
        env = environment(services()["flower"])
        match = REQUIRED.match(env.get("FLOWER_BASIC_AUTH", ""))
        assert match and match["name"] == "FLOWER_BASIC_AUTH", env
        assert env.get("FLOWER_UNAUTHENTICATED_API", "false").lower() not in ("1", "true", "yes")

    @pytest.mark.parametrize("setting", sorted(f for f in Settings.model_fields
                                               if CREDENTIAL_SETTING.search(f)))
    def test_the_api_needs_each_credential_setting_from_the_environment(self, setting: str) -> None:
        variable = f"HOOKLINE_{setting.upper()}"
        value = environment(services()["api"]).get(variable, "")
        match = REQUIRED.match(value)
        assert match and match["name"] == variable, f"api: {variable}={value!r}"

    def test_no_credential_is_written_into_the_file(self) -> None:
        for name, service in services().items():
            for key, value in environment(service).items():
                if CREDENTIAL_SETTING.search(key.lower()) or key == "FLOWER_BASIC_AUTH":
                    assert REQUIRED.match(value), f"{name}: {key} is set to a literal"


class TestImageContents:
    def test_the_image_contains_every_package_pyproject_installs(self) -> None:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
        packages = {p.rstrip("*").rstrip(".") for p in patterns}
        copied = set()
        for instruction, rest in dockerfile():
            if instruction == "COPY" and not rest.startswith("--from"):
                sources = [s for s in shlex.split(rest) if not s.startswith("--")][:-1]
                copied |= {s.rstrip("/") for s in sources}
        missing = {p for p in packages if p not in copied and "." not in copied}
        assert not missing, f"the image leaves out {sorted(missing)}"
        assert all((ROOT / p).is_dir() for p in packages)


class TestMetricsWiring:
    def test_workers_and_the_api_share_the_metrics_directory(self) -> None:
        worker, api = services()["worker"], services()["api"]
        metrics_dir = environment(api).get("HOOKLINE_METRICS_DIR")
        assert metrics_dir and environment(worker).get("HOOKLINE_METRICS_DIR") == metrics_dir
        mounts = [{str(v).split(":")[1] for v in s.get("volumes", [])} for s in (worker, api)]
        assert all(metrics_dir in m for m in mounts), mounts

    def test_the_prometheus_service_uses_the_documented_scrape_config(self) -> None:
        prometheus = services()["prometheus"]
        sources = [str(v).split(":")[0] for v in prometheus.get("volumes", [])]
        assert any(s.endswith("docs/prometheus/prometheus.yml") for s in sources), sources
        for source in sources:
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
        scrape = yaml.safe_load((ROOT / "docs/prometheus/prometheus.yml").read_text())
        jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
        assert jobs["hookline"]["metrics_path"] == "/metrics"
        assert "authorization" in jobs["hookline"]
