"""Incoming webhooks: a secret URL per hook whose calls become events of one type.

A tenant creates a hook (a name, an environment and an event type from the catalogue)
and is shown its URL, ``{public_url}/hooks/{token}``, once. Tokens are ``hlin_`` + 43
URL-safe base64 characters (256 random bits), so, as for API keys
(:mod:`app.apikeys`), only a SHA-256 digest is stored and looked up. A POST to the URL
publishes its JSON object body as an event of the hook's type, for its tenant, in its
environment, through :func:`app.publishing.publish`. The hook's row is checked and
its ``last_used_at`` set inside the event's transaction, so a hook revoked before
that transaction publishes nothing. A revoked hook, a foreign one and one that never
existed are the same ``UnknownIncomingWebhook``.

Parsing and checking are pure; the functions taking ``sessions`` do SQL (and
:func:`receive` also enqueues through the dispatcher).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.apikeys import digest
from app.catalogue import Catalogue
from app.db import transaction
from app.dispatch import Dispatcher
from app.errors import InputError, InvalidPayload, UnknownIncomingWebhook
from app.ids import new_id
from app.json_depth import MAX_JSON_DEPTH, json_depth
from app.models import Environment, IncomingWebhook, utcnow
from app.operational import refuse_operational
from app.publishing import MAX_IDEMPOTENCY_KEY_LENGTH, check_environment, publish, resolve_tenant
from app.text import text_problem

TOKEN_PREFIX = "hlin_"
#: ``secrets.token_urlsafe(32)``: 32 bytes are 43 base64url characters, unpadded.
TOKEN_RE = re.compile(r"^hlin_[A-Za-z0-9_-]{43}$")
#: Characters of the token kept in clear, to tell hooks apart in listings.
DISPLAY_PREFIX_LENGTH = 12
MAX_NAME_LENGTH = 200
#: A caller's ``Idempotency-Key`` is stored as ``{hook id}:{key}``, so it must leave
#: room for an id (at most 40 characters) within the events' limit.
MAX_CALLER_KEY_LENGTH = MAX_IDEMPOTENCY_KEY_LENGTH - 41
#: Where hooks are served, below the public URL.
PATH = "/hooks/"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_token(value: str) -> bool:
    """Whether *value* has a token's shape; anything else is unknown without a lookup."""
    return TOKEN_RE.fullmatch(value) is not None


def hook_url(public_url: str, token: str) -> str:
    """The URL a sender POSTs to: *public_url* (``HOOKLINE_PUBLIC_URL``) + ``/hooks/`` + token."""
    return public_url.rstrip("/") + PATH + token


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body as an event payload: a JSON object, or ``InvalidPayload`` saying why not."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise InvalidPayload(f"the body is JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError, undecodable bytes, over-long integers
        raise InvalidPayload("the body is not valid JSON") from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(data), "a number")
        raise InvalidPayload(f"the body must be a JSON object, not {kind}")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidPayload(f"the body is JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def caller_key(hook_id: str, key: str | None) -> str | None:
    """The publish idempotency key for a caller's ``Idempotency-Key``: scoped to the hook,
    so one hook's callers can neither collide with nor look up another's events."""
    if key is None:
        return None
    if not 0 < len(key) <= MAX_CALLER_KEY_LENGTH:
        raise InputError(f"Idempotency-Key must be 1 to {MAX_CALLER_KEY_LENGTH} characters")
    return f"{hook_id}:{key}"


@dataclass(frozen=True, slots=True)
class NewIncomingWebhook:
    hook: IncomingWebhook
    #: Shown once; only its digest is stored.
    token: str


def create(
    sessions: sessionmaker[Session],
    catalogue: Catalogue,
    *,
    tenant: str,
    name: str,
    event_type: str,
    environment: str = Environment.PRODUCTION,
) -> NewIncomingWebhook:
    """A new hook for *tenant* (id or name) publishing *event_type*; the token is in the result only."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InputError(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    problem = text_problem(name, allow_controls=True)
    if problem is not None:
        raise InputError(f"name {problem}")
    declared = catalogue.require(event_type)
    refuse_operational(event_type)
    environment = check_environment(environment)
    token = generate_token()
    with transaction(sessions) as session:
        owner = resolve_tenant(session, tenant)
        hook = IncomingWebhook(id=new_id("inh"), tenant_id=owner.id, name=name,
                               environment=environment, event_type=declared.name,
                               token_hash=digest(token), token_prefix=token[:DISPLAY_PREFIX_LENGTH],
                               created_at=utcnow())
        session.add(hook)
    return NewIncomingWebhook(hook=hook, token=token)


def list_hooks(sessions: sessionmaker[Session], tenant: str | None = None, *,
               limit: int | None = None, after: str | None = None) -> list[IncomingWebhook]:
    """Live (not revoked) hooks, in id order (creation order): *tenant*'s, or every tenant's."""
    with transaction(sessions) as session:
        query = (select(IncomingWebhook).where(IncomingWebhook.revoked_at.is_(None))
                 .order_by(IncomingWebhook.id))
        if tenant is not None:
            query = query.where(IncomingWebhook.tenant_id == resolve_tenant(session, tenant).id)
        if after is not None:
            query = query.where(IncomingWebhook.id > after)
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query))


def get(sessions: sessionmaker[Session], hook_id: str, *, tenant: str | None = None) -> IncomingWebhook:
    """A live hook of *tenant* (any tenant when None); ``UnknownIncomingWebhook`` otherwise."""
    with transaction(sessions) as session:
        hook = session.get(IncomingWebhook, hook_id)
        if hook is None or hook.revoked_at is not None or (
                tenant is not None and hook.tenant_id != resolve_tenant(session, tenant).id):
            raise UnknownIncomingWebhook(hook_id)
        return hook


def revoke(sessions: sessionmaker[Session], hook_id: str, *, tenant: str | None = None) -> bool:
    """Revoke a hook of *tenant* (any tenant when None): its URL publishes nothing more.

    False if it was already revoked; ``UnknownIncomingWebhook`` if there is no such hook
    or it belongs to another tenant.
    """
    with transaction(sessions) as session:
        hook = session.get(IncomingWebhook, hook_id, with_for_update=True)
        if hook is None or (tenant is not None
                            and hook.tenant_id != resolve_tenant(session, tenant).id):
            raise UnknownIncomingWebhook(hook_id)
        if hook.revoked_at is not None:
            return False
        hook.revoked_at = utcnow()
        return True


def resolve(sessions: sessionmaker[Session], token: str) -> IncomingWebhook:
    """The live hook *token* opens; ``UnknownIncomingWebhook`` for anything else."""
    if not looks_like_token(token):
        raise UnknownIncomingWebhook()
    with transaction(sessions) as session:
        hook = session.scalar(select(IncomingWebhook).where(
            IncomingWebhook.token_hash == digest(token), IncomingWebhook.revoked_at.is_(None)))
    if hook is None:
        raise UnknownIncomingWebhook()
    return hook


@dataclass(frozen=True, slots=True)
class Received:
    hook_id: str
    event_id: str
    event_type: str
    environment: str
    #: False when an ``Idempotency-Key`` repeated: the event is the first call's.
    created: bool
    delivery_ids: list[str]


def receive(
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    catalogue: Catalogue,
    token: str,
    body: bytes,
    *,
    max_payload_bytes: int,
    idempotency_key: str | None = None,
) -> Received:
    """Publish *body*, a call to the hook *token* opens, as that hook's event.

    ``UnknownIncomingWebhook`` comes first, before the body is looked at, so a caller
    without a live token learns nothing else; then ``InvalidPayload``,
    ``PayloadTooLarge`` or ``InputError`` (the ``Idempotency-Key``).
    """
    hook = resolve(sessions, token)
    data = parse_body(body)
    key = caller_key(hook.id, idempotency_key)
    result = publish(sessions, dispatcher, catalogue, tenant=hook.tenant_id,
                     event_type=hook.event_type, data=data, max_payload_bytes=max_payload_bytes,
                     idempotency_key=key, environment=hook.environment, guard=_still_live(hook.id))
    return Received(hook_id=hook.id, event_id=result.event_id, event_type=hook.event_type,
                    environment=hook.environment, created=result.created,
                    delivery_ids=list(result.delivery_ids))


def _still_live(hook_id: str) -> Callable[[Session], None]:
    """A publish guard: record the call on the hook, or refuse if it was revoked meanwhile.

    The conditional UPDATE locks the row until the event commits, so a revocation either
    comes first (and this call publishes nothing) or waits for the event.
    """

    def guard(session: Session) -> None:
        touched = session.execute(
            update(IncomingWebhook)
            .where(IncomingWebhook.id == hook_id, IncomingWebhook.revoked_at.is_(None))
            .values(last_used_at=utcnow())
            .execution_options(synchronize_session=False))
        if touched.rowcount != 1:  # type: ignore[attr-defined]
            raise UnknownIncomingWebhook()

    return guard
