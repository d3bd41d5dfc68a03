"""The ``hookline`` command refuses bad input with exit status 2 and one clear line, writing nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app import admin
from app.cli import cli
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose commands use *stack*'s database and broker."""
    for key, value in stack.env.items():
        if key.startswith("HOOKLINE_"):
            monkeypatch.setenv(key, value)
    admin.create_tenant(stack.hookline.sessions, "acme")
    return CliRunner()


def add(runner: CliRunner, url: str, *options: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["endpoints", "add", url, "--tenant", "acme", "--events", "*",
                                 *options])
    return result.exit_code, " ".join(result.output.split())


class TestEndpointsAdd:
    """``hookline endpoints add`` refuses what could never be sent."""

    @pytest.mark.parametrize(("options", "message"), [
        (["--header", "X-Route: \u20ac10"], "header 'X-Route': value has '\\u20ac', which is not Latin-1"),
        (["--header", "X-Route: eu\x01"], "header 'X-Route': value has the control character '\\x01'"),
        (["--header", "X Route: eu"], "invalid header name 'X Route'"),
        (["--contract", "cr3dentials", "--auth-header", "X-\u20ac"],
         "auth header: invalid header name 'X-\u20ac'"),
    ], ids=["euro-value", "control-value", "space-in-name", "euro-auth-header"])
    def test_a_header_http_cannot_carry_is_refused(self, runner: CliRunner, stack: Stack,
                                                   options: list[str], message: str) -> None:
        status, output = add(runner, "http://127.0.0.1:9/a", *options)
        assert status == 2 and output.startswith(f"error: {message}"), output
        assert admin.list_endpoints(stack.hookline.sessions) == []

    @pytest.mark.parametrize(("url", "reason"), [
        ("https://a..test/", "has an empty label in its host"),
        ("https://" + "a" * 64 + ".test/", "has a host label over 63 characters"),
    ], ids=["empty-label", "long-label"])
    def test_a_host_dns_cannot_carry_is_refused(self, runner: CliRunner, stack: Stack,
                                                url: str, reason: str) -> None:
        assert add(runner, url) == (2, f"error: endpoint URL {url!r} {reason}")
        assert admin.list_endpoints(stack.hookline.sessions) == []
