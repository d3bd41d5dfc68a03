"""Tenants and endpoints: the management operations behind ``hookline tenants|endpoints``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
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
from app.egress import EgressPolicy
from app.engine.ratelimit import RateLimit, rate_limit
from app.errors import InputError, InvalidEndpointConfig, InvalidEndpointURL, UnknownEndpoint
from app.ids import new_id
from app.matching import validate_filters
from app.models import (
    CLAIMABLE_STATES,
    DeadReason,
    Delivery,
    DeliveryState,
    Endpoint,
    Environment,
    Ordering,
    Tenant,
    utcnow,
)
from app.ordering import check_ordering
from app.publishing import check_environment, resolve_tenant
from app.text import text_problem

MAX_URL_LENGTH = 2048
#: The longest a rotated-out secret may keep signing.
MAX_ROTATION_GRACE = timedelta(days=30)


def validate_endpoint_url(url: str, policy: EgressPolicy | None = None) -> str:
    """The URL, if *policy* (strict by default) accepts it; else ``InvalidEndpointURL``.

    https:// only unless the policy allows plain http, and an IP literal must be an
    address deliveries may reach (``BlockedDestination`` otherwise). A hostname is
    not resolved here: each delivery resolves it and checks every address it gets.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidEndpointURL("endpoint URL is empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidEndpointURL(f"endpoint URL is longer than {MAX_URL_LENGTH} characters")
    problem = text_problem(url)
    if problem is not None:
        raise InvalidEndpointURL(f"endpoint URL {problem}")
    policy = policy or EgressPolicy()
    destination = policy.check_url(url)
    if destination.address is not None:
        policy.check_address(destination.address)
    return url


def create_tenant(sessions: sessionmaker[Session], name: str) -> Tenant:
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("tenant name must be 1 to 200 characters")
    problem = text_problem(name)
    if problem is not None:
        raise InputError(f"tenant name {problem}")
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
    policy: EgressPolicy | None = None,
    environment: str = Environment.PRODUCTION,
    enabled: bool = True,
    ordering: str = Ordering.NONE,
    rate_limit_per_second: float | None = None,
    rate_limit_burst: int | None = None,
) -> NewEndpoint:
    """Register a subscriber; the returned secret is shown once and never again.

    *secret* keeps an existing secret (a receiver moving to Hookline); by default one
    is generated in the contract's format. *headers* are static extra headers sent on
    every delivery; *auth_header* names the ``cr3dentials`` credential header.
    *policy* is the deployment's egress policy (``egress_policy_from(settings)``);
    without one, the strict default applies. *ordering* ``key`` delivers the events
    of one ordering key one at a time, in order (:mod:`app.engine.ordering`).
    """
    url = validate_endpoint_url(url, policy)
    ordering = check_ordering(ordering)
    limit = check_rate_limit(rate_limit_per_second, rate_limit_burst)
    description = check_description(description)
    filters = validate_filters(events, catalogue)
    chosen = get_contract(contract)
    auth_header, static = contract_options(chosen, headers, auth_header)
    if secret is not None:
        chosen.validate_secret(secret)
    check_limits(timeout_seconds, max_attempts)
    environment = check_environment(environment)
    secret = secret if secret is not None else chosen.generate_secret()
    now = utcnow()
    with transaction(sessions) as session:
        owner = resolve_tenant(session, tenant)
        endpoint = Endpoint(
            id=new_id("ep"), tenant_id=owner.id, url=url, event_types=filters, enabled=enabled,
            contract=chosen.name, secret=secret, timeout_seconds=timeout_seconds,
            max_attempts=max_attempts, description=description, created_at=now, updated_at=now,
            headers=static, auth_header=auth_header, environment=environment,
            disabled_reason=None if enabled else "created disabled",
            ordering=ordering,
            rate_limit_per_second=limit.per_second if limit else None,
            rate_limit_burst=limit.burst if limit else None,
        )
        session.add(endpoint)
    return NewEndpoint(endpoint=endpoint, secret=secret)


def check_description(description: str | None) -> str | None:
    """Free text for people: line breaks welcome, but nothing the database cannot store."""
    problem = None if description is None else text_problem(description, allow_controls=True)
    if problem is not None:
        raise InputError(f"description {problem}")
    return description


def check_limits(timeout_seconds: float | None, max_attempts: int | None) -> None:
    if timeout_seconds is not None and not (0 < timeout_seconds <= 300):
        raise InputError("timeout must be between 0 and 300 seconds")
    if max_attempts is not None and not (1 <= max_attempts <= 50):
        raise InputError("max attempts must be between 1 and 50")


def check_rate_limit(per_second: float | None, burst: int | None) -> RateLimit | None:
    """The endpoint's rate limit (None: unlimited); InputError naming the bounds."""
    if per_second is None:
        if burst is not None:
            raise InputError("rateLimit.burst needs rateLimit.perSecond")
        return None
    return rate_limit(per_second, burst)


#: Endpoint fields a PATCH may change.
UPDATABLE = frozenset({"url", "events", "enabled", "contract", "environment", "headers",
                       "auth_header", "timeout_seconds", "max_attempts", "description",
                       "ordering", "rate_limit"})


def update_endpoint(
    sessions: sessionmaker[Session],
    catalogue: Catalogue,
    endpoint_id: str,
    changes: Mapping[str, Any],
    *,
    tenant: str | None = None,
    policy: EgressPolicy | None = None,
) -> NewEndpoint:
    """Apply the given fields (absent ones stay as they are) and return the endpoint.

    Enabling re-activates an endpoint switched off by a 410 or an operator. Changing
    the contract issues a new secret in the new contract's format, returned in
    ``NewEndpoint.secret`` (otherwise that is empty: secrets are shown once).
    """
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InputError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction(sessions) as session:
        endpoint = _endpoint_for(session, endpoint_id, tenant)
        new_secret = ""
        chosen = get_contract(changes.get("contract", endpoint.contract))
        if "url" in changes:
            endpoint.url = validate_endpoint_url(changes["url"], policy)
        if "events" in changes:
            endpoint.event_types = validate_filters(changes["events"], catalogue)
        if "contract" in changes and chosen.name != endpoint.contract:
            endpoint.contract = chosen.name
            new_secret = endpoint.secret = chosen.generate_secret()
            endpoint.previous_secret = endpoint.previous_secret_expires_at = None
            if chosen.name != "cr3dentials":
                endpoint.auth_header = None
        if {"headers", "auth_header", "contract"} & set(changes):
            auth = changes.get("auth_header", endpoint.auth_header)
            headers = changes.get("headers", endpoint.headers)
            endpoint.auth_header, endpoint.headers = contract_options(chosen, headers, auth)
        if "environment" in changes:
            endpoint.environment = check_environment(changes["environment"])
        timeout = changes.get("timeout_seconds", endpoint.timeout_seconds)
        attempts = changes.get("max_attempts", endpoint.max_attempts)
        check_limits(timeout, attempts)
        endpoint.timeout_seconds, endpoint.max_attempts = timeout, attempts
        if "description" in changes:
            endpoint.description = check_description(changes["description"])
        if "rate_limit" in changes:
            # None removes the limit; else {"per_second": …, "burst": …}.
            wanted = changes["rate_limit"] or {}
            limit = check_rate_limit(wanted.get("per_second"), wanted.get("burst"))
            endpoint.rate_limit_per_second = limit.per_second if limit else None
            endpoint.rate_limit_burst = limit.burst if limit else None
        if "ordering" in changes:
            # Applies to events published from now on; waiting deliveries keep their order.
            endpoint.ordering = check_ordering(changes["ordering"])
        if "enabled" in changes:
            endpoint.enabled = bool(changes["enabled"])
            endpoint.disabled_reason = None if endpoint.enabled else "disabled through the API"
            if endpoint.enabled:
                endpoint.failing_since = None  # a fresh start: the failing streak is over
        endpoint.updated_at = utcnow()
        session.flush()
        return NewEndpoint(endpoint=endpoint, secret=new_secret)


def delete_endpoint(sessions: sessionmaker[Session], endpoint_id: str, *,
                    tenant: str | None = None) -> list[str]:
    """Stop all future deliveries to an endpoint; dead-letter those still waiting.

    The row stays (marked deleted, hidden from lists) so that its delivery log and
    dead letters keep their history. Waiting deliveries end as dead letters with
    reason ``endpoint_deleted``; one in flight finishes its attempt and then ends the
    same way. Returns the ids dead-lettered now.
    """
    now = utcnow()
    with transaction(sessions) as session:
        endpoint = _endpoint_for(session, endpoint_id, tenant)
        endpoint.deleted_at = now
        endpoint.enabled = False
        endpoint.disabled_reason = "deleted"
        endpoint.updated_at = now
        return list(session.scalars(
            update(Delivery)
            .where(Delivery.endpoint_id == endpoint.id, Delivery.state.in_(CLAIMABLE_STATES))
            .values(state=DeliveryState.DEAD, dead_reason=DeadReason.ENDPOINT_DELETED,
                    dead_at=now, queued_at=None, lease_expires_at=None, updated_at=now,
                    last_error="endpoint deleted")
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ))


def contract_options(
    contract: Contract, headers: Mapping[str, str] | None, auth_header: str | None
) -> tuple[str | None, dict[str, str]]:
    """The validated (auth header, static headers) of an endpoint using *contract*."""
    if contract.name == "cr3dentials":
        auth_header = auth_header or DEFAULT_AUTH_HEADER
        try:
            validate_header_name(auth_header)
        except InvalidEndpointConfig as exc:
            raise InvalidEndpointConfig(f"auth header: {exc}") from None
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
    """Live endpoints (not deleted, not one-off destinations), oldest first."""
    with transaction(sessions) as session:
        query = (select(Endpoint).where(Endpoint.deleted_at.is_(None), Endpoint.one_off.is_(False))
                 .order_by(Endpoint.created_at))
        if tenant is not None:
            query = query.where(Endpoint.tenant_id == resolve_tenant(session, tenant).id)
        return list(session.scalars(query))


def get_endpoint(sessions: sessionmaker[Session], endpoint_id: str, *,
                 tenant: str | None = None) -> Endpoint:
    """A live endpoint of *tenant* (any tenant when None); ``UnknownEndpoint`` otherwise."""
    with transaction(sessions) as session:
        return _endpoint_for(session, endpoint_id, tenant)


def _endpoint_for(session: Session, endpoint_id: str, tenant: str | None) -> Endpoint:
    """The live endpoint *endpoint_id* (not deleted, not a one-off destination), only if it
    belongs to *tenant* when one is given; ``UnknownEndpoint`` otherwise."""
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None or endpoint.one_off or (
            tenant is not None and endpoint.tenant_id != resolve_tenant(session, tenant).id):
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
        if enabled:
            endpoint.failing_since = None  # a fresh start: the failing streak is over
        endpoint.updated_at = utcnow()
    return True
