"""``hookline api`` as a real process: its access log shows calls to incoming webhooks
without their tokens."""

from __future__ import annotations

import pytest
import requests

from app import admin, inbound
from tests.integration.conftest import ChildProcess, Stack, free_port
from tests.support import wait_until

pytestmark = pytest.mark.integration


class ApiProcess(ChildProcess):
    """``hookline api --port …``."""

    command = ("api",)
    ready_marker = b"Uvicorn running on"


def test_the_access_log_shows_a_hooks_calls_without_its_token(stack: Stack) -> None:
    admin.create_tenant(stack.hookline.sessions, "acme")
    token = inbound.create(stack.hookline.sessions, stack.hookline.catalogue, tenant="acme",
                           name="CI runs", event_type="run.succeeded").token
    unknown = inbound.generate_token()
    port = free_port()
    api = ApiProcess(stack, "api", ["--port", str(port)]).start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.post(f"{base}/hooks/{token}", json={"run_id": "1"}, timeout=10
                             ).status_code == 202
        assert requests.post(f"{base}/hooks/{unknown}?retry=1", json={}, timeout=10
                             ).status_code == 404
        wait_until(lambda: api.text().count("/hooks/") >= 2, timeout=10, what="two access lines")
    finally:
        api.stop()
    log = api.text()
    assert token not in log and unknown not in log
    assert f'"POST /hooks/{token[:12]}… HTTP/1.1" 202' in log
    assert f'"POST /hooks/{unknown[:12]}…?retry=1 HTTP/1.1" 404' in log
