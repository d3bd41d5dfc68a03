"""Tenants and endpoints: the management operations behind ``hookline tenants|endpoints``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.catalogue import Catalogue
from app.contracts import (
    DEFAULT_CONTRACT,
    Contract,
    get_contract,
    validate_header_name,
    validate_static_headers,
)
from app.contracts.cr3dentials import DEFAULT_AUTH_HEADER
from app.db import transaction
from app.errors import InputError, InvalidEndpointConfig, InvalidEndpointURL, UnknownEndpoint
from app.ids import new_id
from app.matching import validate_filters
from app.models import Endpoint, Tenant, utcnow
from app.publishing import resolve_tenant

MAX_URL_LENGTH = 2048
#: The longest a rotated-out secret may keep signing.
MAX_ROTATION_GRACE = timedelta(days=30)


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
    secret: str | None = None,
    headers: Mapping[str, str] | None = None,
    auth_header: str | None = None,
) -> NewEndpoint:
    """Register a subscriber; the returned secret is shown once and never again.

    *secret* keeps an existing secret (a receiver moving to Hookline); by default one
    is generated in the contract's format. *headers* are static extra headers sent on
    every delivery; *auth_header* names the ``cr3dentials`` credential header.
    """
    url = validate_endpoint_url(url)
    filters = validate_filters(events, catalogue)
    chosen = get_contract(contract)
    auth_header, static = contract_options(chosen, headers, auth_header)
    if secret is not None:
        chosen.validate_secret(secret)
    if timeout_seconds is not None and not (0 < timeout_seconds <= 300):
        raise InputError("timeout must be between 0 and 300 seconds")
    if max_attempts is not None and not (1 <= max_attempts <= 50):
        raise InputError("max attempts must be between 1 and 50")
    secret = secret if secret is not None else chosen.generate_secret()
    now = utcnow()
    with transaction(sessions) as session:
        owner = resolve_tenant(session, tenant)
        endpoint = Endpoint(
            id=new_id("ep"), tenant_id=owner.id, url=url, event_types=filters, enabled=True,
            contract=chosen.name, secret=secret, timeout_seconds=timeout_seconds,
            max_attempts=max_attempts, description=description, created_at=now, updated_at=now,
            headers=static, auth_header=auth_header,
        )
        session.add(endpoint)
    return NewEndpoint(endpoint=endpoint, secret=secret)


def contract_options(
    contract: Contract, headers: Mapping[str, str] | None, auth_header: str | None
) -> tuple[str | None, dict[str, str]]:
    """The validated (auth header, static headers) of an endpoint using *contract*."""
    if contract.name == "cr3dentials":
        auth_header = auth_header or DEFAULT_AUTH_HEADER
        validate_header_name(auth_header)
    elif auth_header is not None:
        raise InvalidEndpointConfig("an authentication header applies to the cr3dentials contract only")
    reserved = contract.reserved_headers | ({auth_header.lower()} if auth_header else set())
    return auth_header, validate_static_headers(headers, frozenset(reserved))


@dataclass(frozen=True, slots=True)
class RotatedSecret:
    endpoint_id: str
    secret: str
    previous_valid_until: datetime | None


def rotate_secret(
    sessions: sessionmaker[Session],
    endpoint_id: str,
    *,
    grace: timedelta,
    tenant: str | None = None,
    secret: str | None = None,
    now: datetime | None = None,
) -> RotatedSecret:
    """Give an endpoint a new secret; the old one keeps signing for *grace*.

    During the grace period every delivery carries signatures by both secrets (see
    :mod:`app.contracts.base` for how each contract carries two). A zero grace drops
    the old secret at once. Rotating again during a grace period replaces the secret
    in use, which becomes the previous one; the one before it is dropped.
    """
    if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise InvalidEndpointConfig(
            f"grace period must be between 0 and {MAX_ROTATION_GRACE.days} days")
    now = now or utcnow()
    with transaction(sessions) as session:
        endpoint = _endpoint_for(session, endpoint_id, tenant)
        contract = get_contract(endpoint.contract)
        if secret is not None:
            contract.validate_secret(secret)
        new_secret = secret if secret is not None else contract.generate_secret()
        if grace > timedelta(0):
            endpoint.previous_secret = endpoint.secret
            endpoint.previous_secret_expires_at = now + grace
        else:
            endpoint.previous_secret = None
            endpoint.previous_secret_expires_at = None
        endpoint.secret = new_secret
        endpoint.updated_at = now
        return RotatedSecret(endpoint.id, new_secret, endpoint.previous_secret_expires_at)


def list_endpoints(sessions: sessionmaker[Session], tenant: str | None = None) -> list[Endpoint]:
    with transaction(sessions) as session:
        query = select(Endpoint).order_by(Endpoint.created_at)
        if tenant is not None:
            query = query.where(Endpoint.tenant_id == resolve_tenant(session, tenant).id)
        return list(session.scalars(query))


def _endpoint_for(session: Session, endpoint_id: str, tenant: str | None) -> Endpoint:
    """The endpoint *endpoint_id*, only if it belongs to *tenant* when one is given."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None or (tenant is not None
                            and endpoint.tenant_id != resolve_tenant(session, tenant).id):
        raise UnknownEndpoint(endpoint_id)
    return endpoint


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
