"""The management API's OpenAPI schema, fuzzed with schemathesis: no request gets a 5xx.

Every operation is exercised twice over: with random path values and no valid key
(the 401/404 paths), and with the real tenant id and its API key (and a live incoming
webhook's token), so that generated bodies, queries and ids reach the handlers behind
authentication. Generated data rarely holds the values that once made routes answer
500, so explicit cases put each of them (a lone surrogate, NaN and the infinities, a
time outside years 1 to 9999 in UTC, data nested 900 levels deep) into every field of
every operation's body and every time in its query, on top of a valid request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
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


def deep(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels - 1):
        value = {"d": value}
    return {"d": value}


#: Values that once made a route answer 500, by the kind of field they are put in.
HOSTILE: dict[str, list[Any]] = {
    "string": ["\ud800", "caf\u00e9 \udcff"],
    "number": [float("nan"), float("inf"), float("-inf")],
    "date-time": ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
    "object": [deep(900), {"x": float("nan")}, {"\ud800": 1}, {"x": "\ud800"}],
    "map": [{"X-Route": "\ud800"}, {"\udcff": "x"}],
}

#: A valid request body for every operation that takes one: each hostile value goes in
#: on top of it, so it reaches the handler instead of a "field required" refusal.
BASES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/{tenantId}/webhooks"): {"endpoint": "http://127.0.0.1:9/fuzz", "events": ["*"]},
    ("PATCH", "/api/{tenantId}/webhooks/{webhookId}"): {},
    ("POST", "/api/{tenantId}/webhooks/{webhookId}/secret/rotate"): {},
    ("POST", "/api/{tenantId}/webhooks/{webhookId}/test"): {"waitSeconds": 0},
    ("POST", "/api/{tenantId}/events"): {"type": "crew.status.changed", "data": {}},
    ("POST", "/api/{tenantId}/events/batch"): {"events": [{"type": "crew.status.changed",
                                                           "data": {}}]},
    ("POST", "/api/{tenantId}/dead-letters/requeue"): {"filter": {}},
    ("POST", "/api/{tenantId}/incoming-webhooks"): {"name": "fuzz", "eventType": "run.succeeded"},
    ("POST", "/hooks/{token}"): {},
    ("POST", "/api/{tenantId}/replays"): {"since": "2026-01-01T00:00:00Z", "dryRun": True},
    ("PUT", "/api/{tenantId}/retention"): {"days": 30},
}


def kind(schema: dict[str, Any], spec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The HOSTILE kind a field of *schema* takes ("ref" for a nested body), or None."""
    options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
    if len(options) != 1:
        return None
    [field] = options
    if "$ref" in field:
        return "ref", spec["components"]["schemas"][field["$ref"].rsplit("/", 1)[1]]
    if field.get("type") == "array":
        return kind(field["items"], spec)
    if field.get("type") == "object":
        values = [field.get("additionalProperties"), *field.get("patternProperties", {}).values()]
        texts = any(isinstance(v, dict) and v.get("type") == "string" for v in values)
        return ("map" if texts else "object"), field
    if field.get("format") == "date-time":
        return "date-time", field
    if field.get("type") in ("number", "integer"):
        return "number", field
    if field.get("type") == "string":
        return "string", field
    return None


def hostile_bodies(schema: dict[str, Any], spec: dict[str, Any],
                   base: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(field path, body) for every hostile value in every field of *schema*, over *base*."""
    for name, field in schema.get("properties", {}).items():
        found = kind(field, spec)
        if found is None:
            continue
        what, resolved = found
        if what == "ref":
            for inner, body in hostile_bodies(resolved, spec, base.get(name) or {}):
                yield f"{name}.{inner}", base | {name: body}
            continue
        is_list = "array" in {o.get("type") for o in field.get("anyOf", [field])}
        for value in HOSTILE[what]:
            yield name, base | {name: [value] if is_list else value}


def hostile_requests(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path template, request options) for every explicit case of every operation."""
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                assert key in BASES, f"{key}: a route with a body needs a valid base in BASES"
                found = kind(content["application/json"]["schema"], spec)
                assert found is not None, key
                what, schema = found
                if what == "object":  # the body is the event's data itself
                    for value in HOSTILE["object"]:
                        yield *key, {"content": json.dumps(value).encode()}
                else:
                    for name, body in hostile_bodies(schema, spec, BASES[key]):
                        yield *key, {"content": json.dumps(body).encode(), "field": name}
            for parameter in operation.get("parameters", []):
                found = kind(parameter["schema"], spec) if parameter["in"] == "query" else None
                if found is not None and found[0] in ("date-time", "number"):
                    for value in HOSTILE[found[0]]:
                        yield *key, {"params": {parameter["name"]: str(value)},
                                     "field": parameter["name"]}


def test_values_that_once_gave_a_500_never_produce_a_server_error_on_any_route(
    stack: Stack, fuzz_target: dict[str, Any]
) -> None:
    app = create_app(stack.hookline)
    spec = app.openapi()
    with TestClient(app, raise_server_exceptions=False) as client:
        key = {"X-API-KEY": fuzz_target["key"]}
        webhook = client.post(f"/api/{fuzz_target['tenant']}/webhooks", headers=key, json={
            "endpoint": "http://127.0.0.1:9/fuzz-target", "events": ["*"]}).json()["id"]
        path_values = {"tenantId": fuzz_target["tenant"], "webhookId": webhook,
                       "token": fuzz_target["token"]}
        cases = list(hostile_requests(spec))
        failures = []
        for method, template, options in cases:
            field = options.pop("field", "body")
            response = client.request(method, template.format(**path_values), headers={
                **key, "Content-Type": "application/json"}, **options)
            if response.status_code >= 500 or not isinstance(response.json(), dict):
                failures.append((method, template, field, response.status_code, response.text[:200]))
    assert failures == []
    covered = {(method, template) for method, template, _ in cases}
    assert covered >= set(BASES) | {("GET", "/api/{tenantId}/dead-letters"),
                                    ("GET", "/api/{tenantId}/webhooks/{webhookId}/deliveries")}
    assert len(cases) > 100
