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
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row.user if row.user.active else None
