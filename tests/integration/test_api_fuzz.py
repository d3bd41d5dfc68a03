"""The management API's OpenAPI schema, fuzzed with schemathesis: no request gets a 5xx.

Every operation is exercised twice over: with random path values and no valid key
(the 401/404 paths), and with the real tenant id and its API key (and a live incoming
webhook's token), so that generated bodies, queries and ids reach the handlers behind
authentication.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from app import admin, inbound
from app.api import create_app
from app.apikeys import create_api_key
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

#: Examples per operation and authentication mode; ~25 operations.
EXAMPLES = 25


@pytest.fixture
def fuzz_target(stack: Stack) -> dict[str, Any]:
    tenant = admin.create_tenant(stack.hookline.sessions, "fuzz")
    key = create_api_key(stack.hookline.sessions, tenant.id).key
    admin.add_endpoint(stack.hookline.sessions, stack.hookline.catalogue, tenant=tenant.id,
                       url="http://127.0.0.1:9/fuzz", events=["*"],
                       policy=stack.hookline.egress_policy)
    hook = inbound.create(stack.hookline.sessions, stack.hookline.catalogue, tenant=tenant.id,
                          name="fuzz", event_type="run.succeeded")
    return {"tenant": tenant.id, "key": key, "token": hook.token}


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


def fuzz(stack: Stack, prepare: Callable[[Any], None]) -> dict[str, int]:
    """Run every operation's generated cases through *prepare* and the app; count statuses."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(stack.hookline))
    statuses: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, "the schema lost operations"
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            prepare(case)
            body = case.body if isinstance(case.body, dict) else {}
            if body.get("waitSeconds"):
                body["waitSeconds"] = 0  # a test send would wait for a worker not running here
            response = case.call()
            key = f"{response.status_code // 100}xx"
            statuses[key] = statuses.get(key, 0) + 1
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                response.status_code, response.text)

        run()
    return statuses


def test_anonymous_requests_never_produce_a_server_error(stack: Stack) -> None:
    statuses = fuzz(stack, lambda case: None)
    assert statuses.get("4xx", 0) > 0


def test_requests_with_the_tenants_key_never_produce_a_server_error(
    stack: Stack, fuzz_target: dict[str, Any]
) -> None:
    def authenticate(case: Any) -> None:
        if "tenantId" in (case.path_parameters or {}):
            case.path_parameters["tenantId"] = fuzz_target["tenant"]
        if "token" in (case.path_parameters or {}):
            case.path_parameters["token"] = fuzz_target["token"]
        case.headers = {**(case.headers or {}), "X-API-KEY": fuzz_target["key"]}

    statuses = fuzz(stack, authenticate)
    print("status classes:", statuses)
    assert statuses.get("2xx", 0) > 0, "no generated request got past validation"
