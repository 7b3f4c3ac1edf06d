"""API keys (issue, hash, verify, revoke) and dashboard logins, turned into one principal.

Every handler asks `current_principal()` (or uses `require_key`) and gets a workspace; it never
cares whether the caller came with a key or a session cookie.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from flask import Flask, g, request
from flask_login import UserMixin, current_user
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import database
from .errors import ApiError
from .ingest.fields import EMAIL_RE
from .extensions import db, login_manager
from .models import ApiKey, Member, Workspace, utcnow

KEY_PREFIX = "cor_"
DISPLAY_CHARS = 8  # of the random part, shown in lists ("cor_AbCdEfGh…")
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at precision; avoids a write per request


@dataclass(frozen=True)
class Principal:
    workspace_id: int
    kind: str  # "key" | "member"
    name: str  # key prefix or member email
    role: str = "member"

    @property
    def is_admin(self) -> bool:
        return self.kind == "member" and self.role == "admin"


# --- API keys -------------------------------------------------------------------------------

def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(session: Session, workspace: Workspace, name: str = "default") -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned once and never stored."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        workspace_id=workspace.id,
        name=name,
        prefix=plaintext[: len(KEY_PREFIX) + DISPLAY_CHARS],
        key_hash=hash_key(plaintext),
    )
    session.add(key)
    session.flush()
    return key, plaintext


def verify_key(session: Session, plaintext: str) -> ApiKey | None:
    """The live key matching `plaintext`, or None (unknown, malformed or revoked)."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    digest = hash_key(plaintext)
    key = session.scalars(sa.select(ApiKey).where(ApiKey.key_hash == digest)).first()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, digest):
        return None
    return key


def touch_key(session: Session, key: ApiKey) -> None:
    """Mark `key` used (at most once a minute), as a unit of work of its own that never fails
    the request: call it right after `verify_key`, before the request's own work.

    It ends the session's read (the key lookup), writes in a transaction of its own and commits
    only that. With changes pending in the session it leaves the mark for a later request
    rather than commit or drop them; a database error does the same (the mark is informative).
    """
    now = utcnow()
    if not _touch_due(key.last_used_at, now):
        return
    mark = (sa.update(ApiKey)
            .where(ApiKey.workspace_id == key.workspace_id, ApiKey.id == key.id,
                   sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_EVERY))
            .values(last_used_at=now).execution_options(synchronize_session=False))
    try:
        if not database.begin_write(session):
            return
        session.execute(mark)
        session.commit()
    except SQLAlchemyError:
        session.rollback()


def _touch_due(last: datetime | None, now: datetime) -> bool:
    if last is not None and last.tzinfo is None:  # SQLite returns naive datetimes
        last = last.replace(tzinfo=now.tzinfo)
    return last is None or now - last > TOUCH_EVERY


def revoke_keys(session: Session, prefix: str, workspace_id: int | None = None) -> int:
    """Revoke the live keys whose display prefix starts with `prefix`; returns how many."""
    query = sa.update(ApiKey).where(
        ApiKey.prefix.startswith(prefix, autoescape=True), ApiKey.revoked_at.is_(None)
    )
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    return session.execute(query.values(revoked_at=utcnow())).rowcount


def credential_from_request(extra: str | None = None) -> str | None:
    """The key sent as `Bearer <key>`, in HTTP Basic, or in query/body field `extra`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        return basic_secret(value, KEY_PREFIX)
    if extra:
        return request.args.get(extra) or None
    return None


def basic_secret(value: str, prefix: str) -> str | None:
    """The secret in HTTP Basic credentials: the part that looks like one (`prefix`...), else
    the password when one is given, else the user name. SDKs (Segment, RudderStack) send the
    key as the user with an empty password; Census's and Hightouch's Basic-auth forms put the
    secret in the password, after any user name."""
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    if user.startswith(prefix) and not password.startswith(prefix):
        return user
    return password or user or None


def authenticate_key(plaintext: str | None) -> Principal:
    """Turn a key into a principal or raise a 401 ApiError."""
    if not plaintext:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    key = verify_key(db.session, plaintext)
    if key is None:
        raise ApiError(401, "invalid or revoked API key")
    touch_key(db.session, key)
    return Principal(workspace_id=key.workspace_id, kind="key", name=key.prefix)


def require_key(query_param: str | None = None) -> Callable:
    """Decorator for machine endpoints: sets g.principal from the request's key or answers 401."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            g.principal = authenticate_key(credential_from_request(query_param))
            return view(*args, **kwargs)

        return wrapped

    return decorator


# --- dashboard members ----------------------------------------------------------------------

PASSWORD_MIN = 10  # characters; the dashboard's forms and the CLI hold passwords to it


class LoginUser(UserMixin):
    """The Flask-Login view of a member; its id carries the workspace so lookups stay scoped,
    and the member's session token so that a new token ends the sessions signed with the old."""

    def __init__(self, member: Member):
        self.member = member

    def get_id(self) -> str:
        return f"{self.member.workspace_id}:{self.member.session_token}:{self.member.email}"


def login_problem(email: str, password: str) -> str | None:
    """Why this email and password may not become a login, or None (the dashboard's rules)."""
    if len(email.strip()) > 254 or not EMAIL_RE.match(email.strip()):
        return "the login must be an email address like name@company.com"
    if len(password) < PASSWORD_MIN:
        return f"the password must have at least {PASSWORD_MIN} characters"
    return None


def add_member(session: Session, workspace: Workspace, email: str, password: str,
               role: str = "member") -> Member:
    member = Member(workspace_id=workspace.id, email=email.strip().lower(),
                    password_hash=generate_password_hash(password), role=role,
                    session_token=new_session_token())
    session.add(member)
    session.flush()
    return member


def new_session_token() -> str:
    return secrets.token_urlsafe(24)


def end_sessions(member: Member) -> None:
    """Every session cookie of this member stops working (the caller commits)."""
    member.session_token = new_session_token()


def set_password(member: Member, password: str) -> None:
    """A new password, which also ends the member's sessions (the caller commits)."""
    member.password_hash = generate_password_hash(password)
    end_sessions(member)


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def matching_members(session: Session, email: str, password: str) -> list[Member]:
    """The members (one per workspace) with this email and password.

    An unknown email checks a dummy hash, so it costs as long as a wrong password: the time
    of an answer does not tell which emails have a login.
    """
    candidates = list(session.scalars(sa.select(Member).where(
        Member.email == email.strip().lower()).order_by(Member.workspace_id)))
    if not candidates:
        check_password_hash(_dummy_hash(), password)
    return [m for m in candidates if check_password_hash(m.password_hash, password)]


def check_login(session: Session, email: str, password: str) -> Member | None:
    """The first member with this email and password, or None."""
    return next(iter(matching_members(session, email, password)), None)


def current_principal() -> Principal | None:
    """The caller as a principal: a key already checked on this request, or the signed-in member."""
    if "principal" in g:
        return g.principal
    if current_user.is_authenticated:
        m = current_user.member
        return Principal(workspace_id=m.workspace_id, kind="member", name=m.email, role=m.role)
    return None


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "dashboard.login"
    login_manager.login_message = "Please sign in to continue."

    @app.before_request
    def forget_principal() -> None:
        # A request never inherits a principal: the test client reuses one app context (and g)
        # across requests, and a key checked on one call must not authorise the next.
        g.pop("principal", None)

    @login_manager.user_loader
    def load_user(user_id: str) -> LoginUser | None:
        workspace_id, _, rest = user_id.partition(":")
        token, _, email = rest.partition(":")
        if not workspace_id.isdigit() or not token:
            return None
        member = db.session.get(Member, (int(workspace_id), email))
        if member is None or not hmac.compare_digest(member.session_token.encode(),
                                                     token.encode()):
            return None  # removed, signed out, or the password changed since this cookie
        return LoginUser(member)

