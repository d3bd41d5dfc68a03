"""Request-scoped pieces of the management API: the Hookline object and the caller's tenant.

Every route under ``/api/{tenantId}/…`` depends on :func:`tenant_scope`: a missing or
unknown ``X-API-KEY`` is 401; a key for another tenant is 404, exactly like a tenant
that does not exist, so a caller learns nothing about tenants it cannot see.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Query, Request

from app.api.schemas import ID_PATTERN, TEXT_PATTERN
from app.apikeys import tenant_for_key
from app.client import Hookline
from app.db import transaction


def get_hookline(request: Request) -> Hookline:
    hookline: Hookline = request.app.state.hookline
    return hookline


HooklineDep = Annotated[Hookline, Depends(get_hookline)]


def tenant_scope(
    hookline: HooklineDep,
    tenant_id: Annotated[str, Path(alias="tenantId", pattern=ID_PATTERN)],
    api_key: Annotated[str | None, Header(alias="X-API-KEY", max_length=200)] = None,
) -> str:
    """The tenant id the request may act for; 401 or 404 otherwise."""
    with transaction(hookline.sessions) as session:
        tenant = tenant_for_key(session, api_key)
    if tenant is None:
        raise HTTPException(401, "missing or invalid API key",
                            headers={"WWW-Authenticate": "X-API-KEY"})
    if tenant.id != tenant_id:
        raise HTTPException(404, "not found")
    return tenant.id


TenantDep = Annotated[str, Depends(tenant_scope)]


#: An id in the path: anything that cannot be an id is refused before any lookup.
IdPath = Annotated[str, Path(pattern=ID_PATTERN)]
#: An optional id (or page cursor) in the query string.
IdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]
#: Optional free text in the query string.
TextQuery = Annotated[str | None, Query(max_length=128, pattern=TEXT_PATTERN)]
