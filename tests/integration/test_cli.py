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


class TestTextFromTheCommandLine:
    """An argument holding a lone surrogate (bytes that were not UTF-8) is refused, not stored."""

    def test_a_description_url_or_name_with_a_lone_surrogate_is_refused(
        self, runner: CliRunner, stack: Stack
    ) -> None:
        status, output = add(runner, "http://127.0.0.1:9/a", "--description", "eu \udcff")
        assert (status, output) == (
            2, "error: description has the lone surrogate '\\udcff', which is not Unicode text")
        status, output = add(runner, "http://127.0.0.1:9/\udcff")
        assert (status, output) == (
            2, "error: endpoint URL has the lone surrogate '\\udcff', which is not Unicode text")
        assert admin.list_endpoints(stack.hookline.sessions) == []
        hook = runner.invoke(cli, ["hooks", "create", "--tenant", "acme", "--name", "CI \udcff",
                                   "--event-type", "run.failed"])
        assert (hook.exit_code, " ".join(hook.output.split())) == (
            2, "error: name has the lone surrogate '\\udcff', which is not Unicode text")
        tenant = runner.invoke(cli, ["tenants", "create", "glo\udcffbex"])
        assert (tenant.exit_code, " ".join(tenant.output.split())) == (
            2, "error: tenant name has the lone surrogate '\\udcff', which is not Unicode text")
        assert [t.name for t in admin.list_tenants(stack.hookline.sessions)] == ["acme"]


class TestSince:
    """``--since`` takes a duration or an ISO-8601 time, and says so when it cannot be used."""

    @pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                       "3000000d", "999999999999s"],
                             ids=["before-year-1-in-utc", "after-9999-in-utc", "8000-years",
                                  "twelve-digit-seconds"])
    @pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "requeue", "--all"]],
                             ids=["list", "requeue"])
    def test_a_time_utc_cannot_hold_is_a_clear_error(self, runner: CliRunner, command: list[str],
                                                     since: str) -> None:
        result = runner.invoke(cli, [*command, "--since", since])
        assert (result.exit_code, " ".join(result.output.split())) == (
            2, f"error: --since {since!r}: that is before year 1 or after 9999 in UTC")
