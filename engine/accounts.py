"""Users and API tokens. Tokens are shown once and stored as SHA-256 digests."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from . import audit
from .db import utcnow
from .errors import Conflict, NotFound, ValidationFailed
from .models import ApiToken, User
from .passwords import set_password
from .permissions import require
from .roles import ROLES

TOKEN_PREFIX = "cf_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(session: Session, username: str, roles: list[str], *, email: str | None = None,
                display_name: str = "", team: str | None = None, actor: User | None = None) -> User:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValidationFailed("Unknown role.", errors=[
            {"field": "roles", "message": f"'{r}' is not a role; roles: {', '.join(ROLES)}"} for r in unknown])
    if not username or len(username) > 64:
        raise ValidationFailed("Invalid username.", errors=[{"field": "username", "message": "1–64 characters"}])
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"User '{username}' already exists.")
    user = User(username=username, roles=list(dict.fromkeys(roles)), email=email,
                display_name=display_name or username, team=team or None)
    session.add(user)
    session.flush()
    audit.record(session, "user_created", actor=actor, data={"username": username, "roles": user.roles,
                                                             **({"team": user.team} if user.team else {})})
    return user


def issue_token(session: Session, user: User, *, name: str = "default", token: str | None = None,
                expires_at: datetime | None = None) -> str:
    """Create a token and return it in clear text — the only time it is ever available."""
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, name=name, token_hash=hash_token(token), expires_at=expires_at))
    session.flush()
    return token


# Every authenticated request runs this, so it is built once (building it cost ~0.5 ms a request);
# the user comes in the same query, since every such request needs both.
_TOKEN = select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_hash == bindparam("token_hash"))


def valid_token(session: Session, token: str) -> ApiToken | None:
    """The token's row if it is known, unrevoked, unexpired and its user active."""
    row = session.scalar(_TOKEN, {"token_hash": hash_token(token)})
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


# -- managing people from the admin pages: every write checks `user.manage` and is audited ----------

PROFILE_LIMITS = {"display_name": 200, "email": 254, "team": 64}


def check_profile(fields: dict) -> list[dict]:
    """Every problem with a person's display name, e-mail, team and roles as {field, message}."""
    errors = [{"field": name, "message": f"at most {limit} characters"}
              for name, limit in PROFILE_LIMITS.items() if len(fields.get(name) or "") > limit]
    email = fields.get("email")
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        errors.append({"field": "email", "message": "must look like name@example.org"})
    if "roles" in fields:
        unknown = [r for r in fields["roles"] if r not in ROLES]
        if unknown:
            errors.append({"field": "roles", "message": f"not roles: {', '.join(unknown)}"})
        elif not fields["roles"]:
            errors.append({"field": "roles", "message": "choose at least one role"})
    return errors


def _refuse(errors: list[dict], message: str = "The person's details are not valid.") -> None:
    if errors:
        raise ValidationFailed(message, errors=errors)


def list_users(session: Session, actor: User) -> list[User]:
    require(actor, "user.read")
    return list(session.scalars(select(User).order_by(User.username)))


def get_user(session: Session, actor: User, username: str, action: str = "user.read") -> User:
    require(actor, action)
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"User '{username}' does not exist.")
    return user


def add_user(session: Session, actor: User, fields: dict, password: str | None = None) -> User:
    """A new person with roles, and (optionally) their first password — both or neither."""
    require(actor, "user.manage")
    _refuse(check_profile({**fields, "roles": fields.get("roles", [])}))
    user = create_user(session, fields.get("username") or "", fields["roles"], email=fields.get("email") or None,
                       display_name=fields.get("display_name") or "", team=(fields.get("team") or "").strip() or None,
                       actor=actor)
    if password:
        change_password(session, actor, user.username, password)
    return user


def known_teams(session: Session, actor: User) -> list[str]:
    """The teams people are in, for suggesting one (so 'platform' is not typed as 'Platform ')."""
    require(actor, "user.read")
    return list(session.scalars(select(User.team).where(User.team.isnot(None)).distinct().order_by(User.team)))


def _is_last_admin(session: Session, user: User) -> bool:
    # nobody could manage people any more; roles are a JSON list, so compare in Python (few users)
    admins = [u for u in session.scalars(select(User).where(User.active.is_(True))) if "admin" in u.roles]
    return admins == [user]


def update_user(session: Session, actor: User, username: str, fields: dict) -> User:
    """Change display name, e-mail, team and roles; audit what actually changed."""
    user = get_user(session, actor, username, "user.manage")
    _refuse(check_profile(fields))
    new = {"display_name": (fields.get("display_name") or "").strip() or user.username,
           "email": (fields.get("email") or "").strip() or None,
           "team": (fields.get("team") or "").strip() or None,  # the implementing team the reports score
           "roles": list(dict.fromkeys(fields.get("roles", user.roles)))}
    if "admin" in user.roles and "admin" not in new["roles"] and _is_last_admin(session, user):
        _refuse([{"field": "roles", "message": "the last active admin keeps the admin role"}])
    changes = {name: {"from": getattr(user, name), "to": value} for name, value in new.items()
               if name in fields and _differs(getattr(user, name), value)}
    for name, change in changes.items():
        setattr(user, name, change["to"])
    if changes:
        audit.record(session, "user_updated", actor=actor, data={"username": username, "changes": changes})
    return user


def _differs(before, after) -> bool:
    if isinstance(before, list):  # roles: the order they were ticked in means nothing
        return set(before) != set(after)
    return before != after


def set_active(session: Session, actor: User, username: str, active: bool) -> User:
    """Deactivate (signed out at the next request, tokens stop working) or reactivate a person."""
    user = get_user(session, actor, username, "user.manage")
    if not active and user.active and "admin" in user.roles and _is_last_admin(session, user):
        raise Conflict("The last active admin cannot be deactivated.")
    if user.active != active:
        user.active = active
        audit.record(session, "user_reactivated" if active else "user_deactivated", actor=actor,
                     data={"username": username})
    return user


def change_password(session: Session, actor: User, username: str, password: str) -> User:
    """An admin sets someone's password: the same rules as `changeflow users set-password`."""
    require(actor, "user.manage")
    return set_password(session, username, password, actor=actor)
