"""Management API keys: each grants exactly one tenant; only a SHA-256 digest is stored.

Keys are ``hl_`` + 43 URL-safe base64 characters (256 random bits), so a fast digest
is enough: there is nothing to brute-force. Lookup is by digest; the plain key is
shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.ids import new_id
from app.models import ApiKey, Tenant, utcnow
from app.publishing import resolve_tenant

KEY_PREFIX = "hl_"
MAX_KEY_LENGTH = 200


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewApiKey:
    id: str
    tenant_id: str
    key: str


def create_api_key(sessions: sessionmaker[Session], tenant: str) -> NewApiKey:
    """A new key for *tenant* (id or name); the plain key is in the result only."""
    key = generate_key()
    with transaction(sessions) as session:
        owner = resolve_tenant(session, tenant)
        row = ApiKey(id=new_id("key"), tenant_id=owner.id, key_hash=digest(key),
                     prefix=key[:10], created_at=utcnow())
        session.add(row)
        return NewApiKey(id=row.id, tenant_id=owner.id, key=key)


def tenant_for_key(session: Session, key: str | None) -> Tenant | None:
    """The tenant *key* grants, or None for a missing, unknown or revoked key."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(key),
                                              ApiKey.revoked_at.is_(None)))
    return session.get(Tenant, row.tenant_id) if row is not None else None


def revoke_api_key(sessions: sessionmaker[Session], key_id: str) -> bool:
    with transaction(sessions) as session:
        row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True
