"""Calling the management API as a tenant: a FastAPI test client and the tenant's API key.

The ``client``, ``acme`` and ``globex`` fixtures built from these live in the
integration ``conftest.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.testclient import TestClient

from app import admin
from app.apikeys import create_api_key

if TYPE_CHECKING:
    from tests.integration.conftest import Stack


@dataclass
class Caller:
    client: TestClient
    tenant: str
    key: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-API-KEY": self.key, **kwargs.pop("headers", {})}
        return self.client.request(method, f"/api/{self.tenant}{path}", headers=headers, **kwargs)


def tenant_caller(stack: Stack, client: TestClient, name: str) -> Caller:
    """A new tenant *name* and a caller holding a fresh API key of it."""
    tenant = admin.create_tenant(stack.hookline.sessions, name)
    return Caller(client, tenant.id, create_api_key(stack.hookline.sessions, tenant.id).key)
