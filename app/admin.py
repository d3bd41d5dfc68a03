"""Tenants and endpoints: the management operations behind ``hookline tenants|endpoints``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue
from app.contracts import DEFAULT_CONTRACT, get_contract
from app.db import transaction
from app.errors import InputError, InvalidEndpointURL, UnknownEndpoint
from app.ids import new_id
from app.matching import validate_filters
from app.models import Endpoint, Tenant, utcnow
from app.publishing import resolve_tenant

MAX_URL_LENGTH = 2048


def validate_endpoint_url(url: str) -> str:
    """An absolute http(s) URL with a host, or ``InvalidEndpointURL``."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidEndpointURL("endpoint URL is empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidEndpointURL(f"endpoint URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise InvalidEndpointURL(f"endpoint URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidEndpointURL(f"endpoint URL {url!r} must use http:// or https://")
    if not parts.hostname:
        raise InvalidEndpointURL(f"endpoint URL {url!r} has no host")
    if parts.username or parts.password:
        raise InvalidEndpointURL("endpoint URL must not carry credentials")
    return url


def create_tenant(sessions: sessionmaker[Session], name: str) -> Tenant:
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("tenant name must be 1 to 200 characters")
    try:
        with transaction(sessions) as session:
            tenant = Tenant(id=new_id("tnt"), name=name, created_at=utcnow())
            session.add(tenant)
    except IntegrityError:
        raise InputError(f"a tenant named {name!r} already exists") from None
    return tenant


def list_tenants(sessions: sessionmaker[Session]) -> list[Tenant]:
    with transaction(sessions) as session:
        return list(session.scalars(select(Tenant).order_by(Tenant.created_at)))


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: Endpoint
    secret: str


def add_endpoint(
    sessions: sessionmaker[Session],
    catalogue: Catalogue,
    *,
    tenant: str,
    url: str,
    events: Sequence[str],
    contract: str = DEFAULT_CONTRACT,
    timeout_seconds: float | None = None,
    max_attempts: int | None = None,
    description: str | None = None,
) -> NewEndpoint:
    """Register a subscriber; the returned secret is shown once and never again."""
    url = validate_endpoint_url(url)
    filters = validate_filters(events, catalogue)
    chosen = get_contract(contract)
    if timeout_seconds is not None and not (0 < timeout_seconds <= 300):
        raise InputError("timeout must be between 0 and 300 seconds")
    if max_attempts is not None and not (1 <= max_attempts <= 50):
        raise InputError("max attempts must be between 1 and 50")
    secret = chosen.generate_secret()
    now = utcnow()
    with transaction(sessions) as session:
        owner = resolve_tenant(session, tenant)
        endpoint = Endpoint(
            id=new_id("ep"), tenant_id=owner.id, url=url, event_types=filters, enabled=True,
            contract=chosen.name, secret=secret, timeout_seconds=timeout_seconds,
            max_attempts=max_attempts, description=description, created_at=now, updated_at=now,
        )
        session.add(endpoint)
    return NewEndpoint(endpoint=endpoint, secret=secret)


def list_endpoints(sessions: sessionmaker[Session], tenant: str | None = None) -> list[Endpoint]:
    with transaction(sessions) as session:
        query = select(Endpoint).order_by(Endpoint.created_at)
        if tenant is not None:
            query = query.where(Endpoint.tenant_id == resolve_tenant(session, tenant).id)
        return list(session.scalars(query))


def set_endpoint_enabled(sessions: sessionmaker[Session], endpoint_id: str, enabled: bool) -> bool:
    """Enable or disable an endpoint; returns False if it already was in that state."""
    with transaction(sessions) as session:
        endpoint = session.get(Endpoint, endpoint_id)
        if endpoint is None:
            raise UnknownEndpoint(endpoint_id)
        if endpoint.enabled == enabled:
            return False
        endpoint.enabled = enabled
        endpoint.disabled_reason = None if enabled else "disabled by an operator"
        endpoint.updated_at = utcnow()
    return True
