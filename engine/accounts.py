"""Users and API tokens. Tokens are shown once and stored as SHA-256 digests."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .errors import Conflict, ValidationFailed
from .models import ApiToken, User
from .roles import ROLES

TOKEN_PREFIX = "cf_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(session: Session, username: str, roles: list[str], *, email: str | None = None,
                display_name: str = "", actor: User | None = None) -> User:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValidationFailed("Unknown role.", errors=[
            {"field": "roles", "message": f"'{r}' is not a role; roles: {', '.join(ROLES)}"} for r in unknown])
    if not username or len(username) > 64:
        raise ValidationFailed("Invalid username.", errors=[{"field": "username", "message": "1–64 characters"}])
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"User '{username}' already exists.")
    user = User(username=username, roles=list(dict.fromkeys(roles)), email=email,
                display_name=display_name or username)
    session.add(user)
    session.flush()
    audit.record(session, "user_created", actor=actor, data={"username": username, "roles": user.roles})
    return user


def issue_token(session: Session, user: User, *, name: str = "default", token: str | None = None,
                expires_at: datetime | None = None) -> str:
    """Create a token and return it in clear text — the only time it is ever available."""
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, name=name, token_hash=hash_token(token), expires_at=expires_at))
    session.flush()
    return token


def valid_token(session: Session, token: str) -> ApiToken | None:
    """The token's row if it is known, unrevoked, unexpired and its user active."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row if row.user.active else None


def user_for_token(session: Session, token: str) -> User | None:
    row = valid_token(session, token)
    return row.user if row else None


def create_token(session: Session, username: str, *, name: str, scopes: list[str] | None = None,
                 expires_at: datetime | None = None, actor: User | None = None) -> tuple[ApiToken, str]:
    from .permissions import MATRIX

    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed("Unknown user.", errors=[{"field": "username", "message": f"no user '{username}'"}])
    unknown = [s for s in scopes or [] if s not in MATRIX]
    if unknown:
        raise ValidationFailed("Unknown scope.", errors=[
            {"field": "scope", "message": f"'{s}' is not an action; see engine/permissions.py"} for s in unknown])
    token = issue_token(session, user, name=name, expires_at=expires_at)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    row.scopes = list(scopes) if scopes else None
    audit.record(session, "token_created", actor=actor, data={"user": username, "name": name, "token_id": row.id,
                                                              "scopes": row.scopes})
    return row, token


def revoke_token(session: Session, token_id: int, *, actor: User | None = None) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise ValidationFailed("Unknown token.", errors=[{"field": "token_id", "message": f"no token {token_id}"}])
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, "token_revoked", actor=actor, data={"user": row.user.username, "token_id": row.id})
    return row
