"""``hookline flower`` hands Flower the RabbitMQ management API when one is configured."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import workers.celery_app
from app.cli import cli


class _FakeApp:
    def __init__(self, started: list[list[str]]) -> None:
        self.started = started

    def start(self, argv: list[str]) -> None:
        self.started.append(argv)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(workers.celery_app, "create_celery_app", lambda settings: _FakeApp(calls))
    return calls


class TestFlowerCommand:
    def test_the_broker_api_is_passed_to_flower_when_set(
            self, monkeypatch: pytest.MonkeyPatch, started: list[list[str]]) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/hookline")
        monkeypatch.setenv("HOOKLINE_FLOWER_BROKER_API", "http://guest:guest@127.0.0.1:15672/api/")
        result = CliRunner().invoke(cli, ["flower", "--port", "5601"])
        assert result.exit_code == 0, result.output
        assert started == [["flower", "--port=5601", "--address=127.0.0.1",
                            "--broker_api=http://guest:guest@127.0.0.1:15672/api/"]]

    def test_without_it_flower_is_left_to_its_default(
            self, monkeypatch: pytest.MonkeyPatch, started: list[list[str]]) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/hookline")
        result = CliRunner().invoke(cli, ["flower", "--port", "5601"])
        assert result.exit_code == 0, result.output
        assert started == [["flower", "--port=5601", "--address=127.0.0.1"]]
