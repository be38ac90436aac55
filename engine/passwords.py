"""Passwords for signing in to the web pages: argon2id hashes, never the password itself.

Signing in with an unknown username costs the same as with a wrong password (a dummy hash is
verified), so the answer time does not tell which usernames exist.
"""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .errors import NotFound, ValidationFailed
from .models import User

HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_LENGTH = 10
_DUMMY = HASHER.hash("not a password anyone has")


def set_password(session: Session, username: str, password: str, *, actor: User | None = None) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"User '{username}' does not exist.")
    if len(password) < MIN_LENGTH:
        raise ValidationFailed("The password is too short.", errors=[
            {"field": "password", "message": f"at least {MIN_LENGTH} characters"}])
    user.password_hash = HASHER.hash(password)
    audit.record(session, "password_set", actor=actor or user, data={"username": username})
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, or None (for any reason)."""
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.active and user.password_hash else None
    try:
        HASHER.verify(stored or _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if HASHER.check_needs_rehash(stored):
        user.password_hash = HASHER.hash(password)
    return user
