"""The web console through FastAPI's TestClient, on a migrated SQLite database: login,
tenancy, CSRF, escaping and filters. The browser test is tests/integration/test_console.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from app.api import create_app
from app.apikeys import create_api_key, revoke_api_key
from app.client import Hookline
from app.db import transaction
from app.models import ApiKey, Attempt, Tenant, utcnow
from config.settings import get_settings
from tests.unit.conftest import Harness, clear_hookline_env

OPERATOR_KEY = "operator-key-for-tests-0123456789"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    """A browser-like visitor: one cookie jar, forms posted with the page's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        response = self.client.get(path, params=params, follow_redirects=False)
        found = CSRF_RE.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, str], *, csrf: str | None = None) -> httpx.Response:
        fields = {"csrf_token": self.csrf if csrf is None else csrf, **data}
        return self.client.post(path, data=fields, follow_redirects=False)

    def login(self, key: str) -> httpx.Response:
        self.get("/console/login")
        response = self.post("/console/login", {"key": key})
        self.get("/console")
        return response


@pytest.fixture
def make_console(harness: Harness) -> Iterator[Callable[..., Console]]:
    hookline = Hookline(harness.settings.model_copy(update={
        "operator_key": OPERATOR_KEY, "console_secret": "console-secret-for-tests-0123"}),
        sender=harness.sender)
    app = create_app(hookline)
    clients: list[TestClient] = []

    def make() -> Console:
        client = TestClient(app)
        clients.append(client)
        return Console(client)

    yield make
    for client in clients:
        client.close()
    hookline.close()


@pytest.fixture
def console(make_console: Callable[..., Console]) -> Console:
    return make_console()


def tenant_with_key(harness: Harness, name: str) -> tuple[Tenant, str]:
    tenant = harness.tenant(name)
    return tenant, create_api_key(harness.sessions, tenant.id).key


def dead_delivery(harness: Harness, tenant: Tenant, excerpt: str = '{"error":"bad"}') -> str:
    """A delivery to a new endpoint of *tenant*, dead after one attempt answered 400 with *excerpt*."""
    endpoint = harness.endpoint(tenant)
    [delivery_id] = harness.publish(tenant, endpoint_ids=[endpoint.id]).delivery_ids
    now = utcnow()
    harness.set_delivery(delivery_id, state="dead", dead_reason="permanent_4xx", dead_at=now,
                         attempt_count=1, last_status_code=400, last_error="HTTP 400")
    with transaction(harness.sessions) as session:
        session.add(Attempt(delivery_id=delivery_id, attempt_number=1, started_at=now,
                            duration_ms=12.0, status_code=400, response_excerpt=excerpt))
    return delivery_id


class TestLogin:
    def test_a_wrong_key_shows_the_login_page_again_and_says_nothing_more(
        self, console: Console, harness: Harness
    ) -> None:
        _, key = tenant_with_key(harness, "acme")
        revoked_tenant, revoked = tenant_with_key(harness, "initech")
        with transaction(harness.sessions) as session:
            key_id = session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == revoked_tenant.id))
        assert key_id is not None and revoke_api_key(harness.sessions, key_id)
        answers = []
        for wrong in ("hl_not-a-key", key + "x", revoked, OPERATOR_KEY[:-1], ""):
            response = console.login(wrong)
            assert response.status_code == 401
            text = response.text
            assert "That key was not accepted." in text and 'id="login"' in text
            assert wrong not in text or not wrong
            answers.append(CSRF_RE.sub("", text))
            assert console.get("/console").status_code == 303
        assert len(set(answers)) == 1, "every wrong key gets the very same page"

    def test_a_tenant_key_logs_in_with_a_signed_httponly_strict_cookie(
        self, console: Console, harness: Harness
    ) -> None:
        _, key = tenant_with_key(harness, "acme")
        response = console.login(key)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert key not in cookie
        page = console.get("/console")
        assert page.status_code == 200 and "acme" in page.text

    def test_revoking_the_key_ends_the_session(self, console: Console, harness: Harness) -> None:
        tenant, key = tenant_with_key(harness, "acme")
        console.login(key)
        assert console.get("/console").status_code == 200
        with transaction(harness.sessions) as session:
            key_id = session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id))
        assert key_id is not None and revoke_api_key(harness.sessions, key_id)
        assert console.get("/console").status_code == 303

    def test_a_forged_cookie_is_no_session(self, console: Console, harness: Harness) -> None:
        console.client.cookies.set("hookline_console", "eyJjIjoieCIsIm8iOiJ4In0.forged.sig",
                                   path="/console")
        assert console.get("/console").status_code == 303

    def test_the_operator_key_sees_every_tenant(self, console: Console, harness: Harness) -> None:
        acme, _ = tenant_with_key(harness, "acme")
        globex, _ = tenant_with_key(harness, "globex")
        first, second = dead_delivery(harness, acme), dead_delivery(harness, globex)
        assert console.login(OPERATOR_KEY).status_code == 303
        page = console.get("/console/dead-letters").text
        assert first in page and second in page and "operator" in page

    def test_a_short_operator_key_is_refused_by_the_settings(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clear_hookline_env(monkeypatch)
        with pytest.raises(ValidationError, match="operator_key"):
            get_settings(operator_key="short")

    def test_without_an_operator_key_configured_no_key_is_the_operator(
        self, harness: Harness
    ) -> None:
        with TestClient(create_app(Hookline(harness.settings, sender=harness.sender))) as client:
            console = Console(client)
            assert console.login(OPERATOR_KEY).status_code == 401


class TestTenancy:
    def test_another_tenants_delivery_is_404_and_cannot_be_requeued(
        self, console: Console, harness: Harness
    ) -> None:
        acme, acme_key = tenant_with_key(harness, "acme")
        globex, _ = tenant_with_key(harness, "globex")
        foreign = dead_delivery(harness, globex)
        own = dead_delivery(harness, acme)
        console.login(acme_key)
        sent = len(harness.sender.delivery_ids_sent())
        assert console.get(f"/console/deliveries/{own}").status_code == 200
        shown = console.get(f"/console/deliveries/{foreign}")
        assert shown.status_code == 404 and foreign not in shown.text
        assert foreign not in console.get("/console/deliveries").text
        assert foreign not in console.get("/console/dead-letters").text
        requeue = console.post("/console/dead-letters/requeue", {"mode": "one", "id": foreign})
        assert requeue.status_code == 404
        assert harness.delivery(foreign).state == "dead"
        assert len(harness.sender.delivery_ids_sent()) == sent

    def test_requeue_by_filter_touches_only_the_tenants_own_dead_letters(
        self, console: Console, harness: Harness
    ) -> None:
        acme, acme_key = tenant_with_key(harness, "acme")
        globex, _ = tenant_with_key(harness, "globex")
        foreign, own = dead_delivery(harness, globex), dead_delivery(harness, acme)
        console.login(acme_key)
        sent = len(harness.sender.delivery_ids_sent())
        preview = console.post("/console/dead-letters/requeue",
                               {"mode": "preview", "reason": "permanent_4xx"})
        assert 'id="would-requeue">1<' in preview.text
        assert harness.delivery(own).state == "dead", "a dry run changes nothing"
        done = console.post("/console/dead-letters/requeue",
                            {"mode": "confirm", "reason": "permanent_4xx"})
        assert done.status_code == 200 and own in done.text
        assert harness.delivery(own).state == "pending"
        assert harness.delivery(foreign).state == "dead"
        assert harness.sender.delivery_ids_sent()[sent:] == [own]

    def test_another_tenants_endpoint_cannot_be_disabled_or_rotated(
        self, console: Console, harness: Harness
    ) -> None:
        _, acme_key = tenant_with_key(harness, "acme")
        globex, _ = tenant_with_key(harness, "globex")
        endpoint = harness.endpoint(globex)
        console.login(acme_key)
        assert endpoint.id not in console.get("/console/endpoints").text
        for action in ("disable", "rotate-secret"):
            response = console.post(f"/console/endpoints/{endpoint.id}/{action}", {})
            assert response.status_code == 404, action
        row = harness.endpoint_row(endpoint.id)
        assert row.enabled is True and row.secret == endpoint.secret

    def test_a_tenant_disables_enables_and_rotates_its_own_endpoint(
        self, console: Console, harness: Harness
    ) -> None:
        acme, acme_key = tenant_with_key(harness, "acme")
        endpoint = harness.endpoint(acme)
        console.login(acme_key)
        console.get("/console/endpoints")
        assert console.post(f"/console/endpoints/{endpoint.id}/disable", {}).status_code == 303
        assert harness.endpoint_row(endpoint.id).enabled is False
        assert "disabled by an operator" in console.get("/console/endpoints").text
        console.post(f"/console/endpoints/{endpoint.id}/enable", {})
        assert harness.endpoint_row(endpoint.id).enabled is True
        rotated = console.post(f"/console/endpoints/{endpoint.id}/rotate-secret", {})
        new_secret = harness.endpoint_row(endpoint.id).secret
        assert new_secret != endpoint.secret and new_secret in rotated.text
        assert rotated.headers["cache-control"] == "no-store"


    def test_an_endpoint_ordered_per_key_says_so(self, console: Console,
                                                 harness: Harness) -> None:
        acme, acme_key = tenant_with_key(harness, "acme")
        ordered = harness.endpoint(acme, ordering="key")
        harness.endpoint(acme)
        console.login(acme_key)
        page = console.get("/console/endpoints").text
        assert page.count("ordered per key") == 1
        row = page.split(f'id="endpoint-{ordered.id}"')[1].split("</tr>")[0]
        assert "ordered per key" in row


class TestCsrf:
    def test_a_post_without_the_sessions_token_is_refused_and_does_nothing(
        self, make_console: Callable[..., Console], harness: Harness
    ) -> None:
        acme, acme_key = tenant_with_key(harness, "acme")
        endpoint = harness.endpoint(acme)
        delivery_id = dead_delivery(harness, acme)
        victim, other = make_console(), make_console()
        victim.login(acme_key)
        other.login(acme_key)
        assert victim.csrf and other.csrf and victim.csrf != other.csrf
        for token in ("", "forged", other.csrf):
            assert victim.post(f"/console/endpoints/{endpoint.id}/disable", {},
                               csrf=token).status_code == 403
            assert victim.post("/console/dead-letters/requeue", {"mode": "one", "id": delivery_id},
                               csrf=token).status_code == 403
            assert victim.post("/console/logout", {}, csrf=token).status_code == 403
        assert harness.endpoint_row(endpoint.id).enabled is True
        assert harness.delivery(delivery_id).state == "dead"
        assert victim.get("/console").status_code == 200, "still logged in"

    def test_the_login_form_needs_its_token_too(self, console: Console, harness: Harness) -> None:
        _, key = tenant_with_key(harness, "acme")
        console.get("/console/login")
        assert console.post("/console/login", {"key": key}, csrf="nope").status_code == 403
        assert console.get("/console").status_code == 303


class TestRendering:
    def test_a_receivers_script_is_shown_as_text(self, console: Console, harness: Harness) -> None:
        acme, key = tenant_with_key(harness, "acme")
        delivery_id = dead_delivery(harness, acme, excerpt="<script>alert('x')</script>")
        console.login(key)
        page = console.get(f"/console/deliveries/{delivery_id}").text
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
        assert "<script>alert" not in page

    def test_signatures_are_withheld_and_the_secret_never_shown(
        self, console: Console, harness: Harness
    ) -> None:
        acme, key = tenant_with_key(harness, "acme")
        delivery_id = dead_delivery(harness, acme)
        secret = harness.endpoint_row(harness.delivery(delivery_id).endpoint_id).secret
        console.login(key)
        page = console.get(f"/console/deliveries/{delivery_id}").text
        assert "X-CrewPass-Signature" in page and "withheld" in page
        assert "X-CrewPass-Event-Type" in page
        assert secret not in page

    @pytest.mark.parametrize(("query", "message"), [
        ({"since": "yesterday"}, "not a time"),
        ({"since": "2026-13-45"}, "not a time"),
        ({"until": "0001-01-01T00:00+01:00"}, "not a time"),
        ({"since": "999999w"}, "not a time"),
        ({"since": "1h", "until": "2h"}, "must be later than since"),
        ({"state": "exploded"}, "unknown state"),
    ])
    def test_a_bad_filter_is_an_inline_error_not_a_500(
        self, console: Console, harness: Harness, query: dict[str, str], message: str
    ) -> None:
        _, key = tenant_with_key(harness, "acme")
        console.login(key)
        for path in ("/console/deliveries", "/console/dead-letters"):
            response = console.get(path, params=query)
            if "state" in query and path.endswith("dead-letters"):
                continue  # that list has no state filter
            assert response.status_code == 400, (path, query)
            assert 'id="filter-errors"' in response.text and message in response.text

    def test_filters_narrow_the_deliveries(self, console: Console, harness: Harness) -> None:
        acme, key = tenant_with_key(harness, "acme")
        dead = dead_delivery(harness, acme)
        [pending] = harness.publish(acme, "crew.status.changed", {"crew_id": "c1"}).delivery_ids
        console.login(key)
        by_state = console.get("/console/deliveries", params={"state": "dead"}).text
        assert dead in by_state and pending not in by_state
        by_type = console.get("/console/deliveries", params={"event_type": "crew.status.changed"}).text
        assert pending in by_type and dead not in by_type
        later = (utcnow() + timedelta(minutes=5)).isoformat()
        assert dead not in console.get("/console/deliveries", params={"since": later}).text
        recent = console.get("/console/deliveries", params={"since": "10m", "reason": "permanent_4xx"})
        assert dead in recent.text and pending not in recent.text

    def test_the_throughput_poll_needs_a_session(self, console: Console, harness: Harness) -> None:
        assert console.get("/console/throughput.json").status_code == 401
        _, key = tenant_with_key(harness, "acme")
        console.login(key)
        body = console.get("/console/throughput.json").json()
        assert body["deliveredPerSecond"] == 0 and body["waiting"] == 0
