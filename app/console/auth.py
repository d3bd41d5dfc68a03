"""Who is looking at the console: login by key, the signed session cookie, the CSRF token.

Two kinds of login:

* a tenant's management API key (``hookline tenants create`` / ``new-key``): the
  console then shows and acts on that tenant's data only, exactly as the API does;
* the operator key (``HOOKLINE_OPERATOR_KEY``), when one is configured: every tenant.

The session is a cookie signed with ``HOOKLINE_CONSOLE_SECRET`` (or a random secret
made when the app is built, so sessions end with the process). It holds the id of the
API key used, never the key, and is checked against the database on every request:
revoking the key ends the session. An operator session holds a fingerprint of the
operator key, so changing the key ends those sessions. The cookie also carries the
session's CSRF token; every form posts it back and :func:`csrf_ok` compares them.
Even before login the visitor gets a session (anonymous) so that the login form is
protected too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.apikeys import digest, tenant_for_key
from app.db import transaction
from app.models import ApiKey, Tenant
from config.settings import Settings

COOKIE_NAME = "hookline_console"
#: A session lasts a working day; after that the operator logs in again.
SESSION_MAX_AGE_SECONDS = 12 * 3600
#: The form field (and session entry) that carries the CSRF token.
CSRF_FIELD = "csrf_token"
_SALT = "hookline.console.session"


@dataclass(frozen=True, slots=True)
class Viewer:
    """A logged-in visitor: one tenant, or the operator (``tenant_id`` None) who sees all."""

    tenant_id: str | None
    label: str

    @property
    def is_operator(self) -> bool:
        return self.tenant_id is None


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """What the cookie says: the CSRF token, and who logged in (nobody yet, if both are None)."""

    csrf: str
    api_key_id: str | None = None
    operator: str | None = None


class Sessions:
    """Signs and reads session cookies, and checks login keys. Built once per app."""

    def __init__(self, settings: Settings, db: Callable[[], sessionmaker[Session]]) -> None:
        """*db* gives the database sessions when first needed (the app builds its engine lazily)."""
        secret = settings.console_secret or secrets.token_urlsafe(32)
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self._db = db
        self._operator_key = settings.operator_key
        self._operator_mark = (None if settings.operator_key is None else
                               hmac.new(secret.encode(), settings.operator_key.encode(),
                                        hashlib.sha256).hexdigest()[:32])

    # -- cookies ---------------------------------------------------------------------
    def dump(self, state: ConsoleSession) -> str:
        payload: dict[str, Any] = {"c": state.csrf}
        if state.api_key_id is not None:
            payload["k"] = state.api_key_id
        if state.operator is not None:
            payload["o"] = state.operator
        return self._serializer.dumps(payload)

    def load(self, cookie: str | None) -> ConsoleSession | None:
        """The session in *cookie*, or None when it is missing, forged or expired."""
        if not cookie:
            return None
        try:
            payload = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return None
        key, operator = payload.get("k"), payload.get("o")
        return ConsoleSession(csrf=payload["c"], api_key_id=key if isinstance(key, str) else None,
                              operator=operator if isinstance(operator, str) else None)

    @staticmethod
    def anonymous() -> ConsoleSession:
        return ConsoleSession(csrf=secrets.token_urlsafe(32))

    # -- who is it -------------------------------------------------------------------
    def login(self, key: str) -> ConsoleSession | None:
        """A fresh session (new CSRF token) for *key*, or None when the key is not accepted."""
        key = key.strip()
        if self._operator_key is not None and hmac.compare_digest(
                key.encode(), self._operator_key.encode()):
            return ConsoleSession(csrf=secrets.token_urlsafe(32), operator=self._operator_mark)
        with transaction(self._db()) as session:
            if tenant_for_key(session, key) is None:
                return None
            key_id = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest(key)))
        return None if key_id is None else ConsoleSession(csrf=secrets.token_urlsafe(32),
                                                          api_key_id=key_id)

    def viewer(self, state: ConsoleSession | None) -> Viewer | None:
        """Who *state* logged in as, if that login still holds (key not revoked, same operator key)."""
        if state is None:
            return None
        if state.operator is not None:
            if self._operator_mark is not None and hmac.compare_digest(state.operator,
                                                                       self._operator_mark):
                return Viewer(tenant_id=None, label="operator (all tenants)")
            return None
        if state.api_key_id is None:
            return None
        with transaction(self._db()) as session:
            row = session.get(ApiKey, state.api_key_id)
            if row is None or row.revoked_at is not None:
                return None
            tenant = session.get(Tenant, row.tenant_id)
            return Viewer(tenant_id=row.tenant_id,
                          label=tenant.name if tenant is not None else row.tenant_id)


def csrf_ok(state: ConsoleSession | None, submitted: str | None) -> bool:
    """Whether a form's token is this session's token (compared in constant time)."""
    if state is None or not submitted:
        return False
    return hmac.compare_digest(state.csrf.encode(), submitted.encode())
