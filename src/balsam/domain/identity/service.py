"""Identity service: local users, login sessions, personal API tokens.

Contract:
* Secrets handed out (session cookie values, API tokens, generated passwords)
  come from :mod:`secrets`; only their SHA-256 (or an argon2id hash for
  passwords) is stored.
* Failed logins are counted per (username, client address) and per client
  address inside ``auth.login_window_seconds``; at ``auth.login_max_failures``
  for the pair, or ``auth.login_max_failures_per_address`` for the address, the
  login is refused with RateLimited (with ``retryAfterSeconds``) before the
  password is checked. Failures from one address never lock the same user out
  at another (a workspace is its own address, ``uid:<n>``).
* Every login success and failure, and every user or token change, is audited.
  Refusals are audited once per lock, not per request (so a locked-out script
  cannot flood the trail): the failure that reaches a limit is followed by one
  ``denied`` record "rate limited"; the refusals that follow write none. The
  failures one address can make per window are bounded by the limits, so the
  records per address and window are too.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import ApiToken, LoginFailure, LoginSession, User, utcnow
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
)
from balsam.domain.identity.schemas import TokenCreate, UserCreate, UserUpdate
from balsam.errors import (
    N_,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
TOKEN_PREFIX = "blsm_"  # noqa: S105 - a public prefix, not a secret


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


#: Client addresses that cannot say whose socket it was: closed before it was looked up
#: (``web.peers.CLOSED``), or before the server could even ask its address.
UNATTRIBUTED = frozenset({"loopback:closed", "unknown"})


def local_uid(address: str) -> int | None:
    """The uid in a client address ``uid:<n>`` (a local process of another user, see
    ``web.peers``); None for any other address."""
    kind, _, number = address.partition(":")
    return int(number) if kind == "uid" and number.isdigit() else None


def _used_by_its_browser(row: LoginSession, address: str) -> bool:
    """Whether a login session is used from the local uid that started it (or, started
    by no local uid, from none), and by a socket that can say whose it is."""
    return address not in UNATTRIBUTED and local_uid(address) == row.local_uid


def live_login(session: Session, id_hash: str, address: str = "") -> tuple[User, LoginSession]:
    """The user and row of the login session with this digest; Unauthenticated when
    it is unknown or expired, its account deactivated, or ``address`` is not of the
    local uid that started it (a session is bound to the local browser of another
    user of this machine that started it; one started elsewhere, to no local uid):
    a cookie planted in, or taken from, another browser on this machine."""
    row = session.get(LoginSession, id_hash)
    if row is None or row.expires_at <= utcnow():
        raise Unauthenticated("The session has expired; log in again.")
    if not _used_by_its_browser(row, address):
        raise Unauthenticated(N_("This session belongs to another browser; log in again."))
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("The account is deactivated.")
    return user, row


@dataclass(frozen=True)
class Actor:
    """Who is making a request (for rules and the audit trail)."""

    user_id: int
    username: str
    is_admin: bool
    request_id: str = ""
    address: str = ""


def require_admin(actor: Actor) -> None:
    """Forbidden unless ``actor`` is an administrator."""
    if not actor.is_admin:
        raise Forbidden(N_("Administrators only."))


class IdentityService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.auth = ctx.settings.auth

    # -- users -----------------------------------------------------------------
    def create_user(self, actor: Actor | None, data: UserCreate) -> User:
        """Create a local user (admins only, or the system when actor is None)."""
        if actor is not None and not actor.is_admin:
            raise Forbidden(N_("Only administrators can create users."))
        username = data.username.strip()
        if not USERNAME_RE.fullmatch(username):
            raise InvalidInput(
                N_(
                    "A username is 1-64 characters of lower-case letters, digits, '.', '_' "
                    "or '-', starting with a letter or digit."
                )
            )
        check_password_policy(
            data.password, username=username, min_length=self.auth.password_min_length
        )
        with self.ctx.sessions() as session, session.begin():
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(N_("The username '%(name)s' is taken."), params={"name": username})
            user = User(
                username=username,
                display_name=data.display_name or username,
                email=data.email,
                password_hash=hash_password(data.password),
                is_admin=data.is_admin,
            )
            session.add(user)
        self._audit(actor, "user.create", f"user:{username}", details={"isAdmin": data.is_admin})
        return user

    def update_user(self, actor: Actor, username: str, data: UserUpdate) -> User:
        """Admins change any user; a user may change their own name and email."""
        own = actor.username == username
        privileged = data.is_active is not None or data.is_admin is not None
        if not actor.is_admin and (not own or privileged):
            raise Forbidden(N_("Only administrators can change other users or their status."))
        if own and data.is_active is False:
            raise Conflict(N_("You cannot deactivate your own account."))
        if own and data.is_admin is False:
            # The acting administrator always remains one, so the platform
            # never ends up without anybody who can manage it.
            raise Conflict(
                N_("You cannot remove your own administrator rights; ask another administrator.")
            )
        with self.ctx.sessions() as session, session.begin():
            user = self._user(session, username)
            for field, value in data.model_dump(exclude_none=True, by_alias=False).items():
                setattr(user, field, value)
            if data.is_active is False:
                session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        self._audit(
            actor,
            "user.update",
            f"user:{username}",
            details=data.model_dump(exclude_none=True, by_alias=True),
        )
        return user

    def get_user(self, username: str) -> User:
        with self.ctx.sessions() as session:
            return self._user(session, username)

    def list_users(
        self, *, query: str = "", limit: int = 50, offset: int = 0
    ) -> tuple[list[User], int]:
        with self.ctx.sessions() as session:
            stmt = select(User)
            if query:
                like = f"%{query.casefold()}%"
                stmt = stmt.where(
                    or_(User.username.like(like), func.lower(User.display_name).like(like))
                )
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = session.scalars(stmt.order_by(User.username).limit(limit).offset(offset)).all()
            return list(rows), total

    def users_for_admin(
        self, actor: Actor, *, query: str = "", limit: int = 50, offset: int = 0
    ) -> tuple[list[User], int]:
        """:meth:`list_users` for an administrator (Forbidden for anyone else)."""
        require_admin(actor)
        return self.list_users(query=query, limit=limit, offset=offset)

    def reset_password(self, actor: Actor, username: str) -> str:
        """A new random password for ``username`` (administrators only), returned
        once to be handed over; the user's login sessions end."""
        require_admin(actor)
        password = secrets.token_urlsafe(12)
        with self.ctx.sessions() as session, session.begin():
            user = self._user(session, username)
            user.password_hash = hash_password(password)
            session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        self._audit(actor, "user.password-reset", f"user:{username}")
        return password

    def ensure_admin(self, username: str, password: str | None) -> str | None:
        """Create the first admin if no admin exists; return a generated password once."""
        with self.ctx.sessions() as session:
            if session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)):
                return None
        generated = None
        if password is None:
            generated = password = secrets.token_urlsafe(18)
        self.create_user(
            None,
            UserCreate(
                username=username, password=password, is_admin=True, display_name="Administrator"
            ),
        )
        return generated

    @staticmethod
    def _user(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(N_("No user '%(name)s'."), params={"name": username})
        return user

    # -- authentication --------------------------------------------------------
    def login_password(
        self, username: str, password: str, *, address: str, request_id: str = ""
    ) -> User:
        """Check a password under the rate limit; audit the outcome. Unauthenticated
        when password sign-in is turned off (``oidc.password_login``)."""
        if not self.ctx.settings.oidc.password_login:
            raise Unauthenticated(
                N_("Password sign-in is turned off: sign in with the identity provider.")
            )
        wait = self._lock_seconds_left(username, address)
        if wait:
            raise RateLimited(
                "Too many failed logins; try again later.",
                details={"audited": True, "retryAfterSeconds": wait},
            )
        with self.ctx.sessions() as session, session.begin():
            user = session.scalar(select(User).where(User.username == username))
            ok = verify_password(user.password_hash if user else None, password)
            if not ok or user is None or not user.is_active:
                session.add(LoginFailure(username=username[:64], address=address[:64]))
        if not ok or user is None or not user.is_active:
            self._audit_login(username, "failure", address, request_id, "bad credentials")
            if self._lock_seconds_left(username, address):
                self._audit_login(username, "denied", address, request_id, "rate limited")
            raise Unauthenticated(N_("Wrong username or password."), details={"audited": True})
        self._audit_login(username, "success", address, request_id, "")
        return user

    def _lock_seconds_left(self, username: str, address: str) -> int:
        """Seconds until ``username`` may try again from ``address``; 0 when not locked.

        A limit of n is reached when the n-th newest failure (of the pair, or
        of the address) is inside the window; the lock ends when it leaves."""
        now = utcnow()
        since = now - timedelta(seconds=self.auth.login_window_seconds)
        limits = (
            (LoginFailure.address == address[:64], self._address_limit()),
            (
                and_(LoginFailure.username == username[:64], LoginFailure.address == address[:64]),
                self.auth.login_max_failures,
            ),
        )
        oldest_counted: list[datetime] = []
        with self.ctx.sessions() as session, session.begin():
            session.execute(delete(LoginFailure).where(LoginFailure.at < since))
            for where, limit in limits:
                nth = session.scalar(
                    select(LoginFailure.at)
                    .where(where, LoginFailure.at >= since)
                    .order_by(LoginFailure.at.desc())
                    .offset(limit - 1)
                    .limit(1)
                )
                if nth is not None:
                    oldest_counted.append(nth)
        if not oldest_counted:
            return 0
        return max(1, math.ceil((max(oldest_counted) - since).total_seconds()))

    def _address_limit(self) -> int:
        return self.auth.login_max_failures_per_address or self.auth.login_max_failures

    def _audit_login(
        self, username: str, outcome: str, address: str, request_id: str, why: str
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=username[:64],
                action="auth.login",
                target=f"user:{username[:64]}",
                outcome=outcome,  # type: ignore[arg-type]
                request_id=request_id,
                details={"address": address, **({"reason": why} if why else {})},
            )
        )

    def authenticate_token(self, token: str) -> User:
        """The active user owning a live (unexpired, unrevoked) token."""
        now = utcnow()
        with self.ctx.sessions() as session, session.begin():
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(token)))
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise Unauthenticated("The API token is invalid, expired or revoked.")
            user = session.get(User, row.user_id)
            if user is None or not user.is_active:
                raise Unauthenticated("The account is deactivated.")
            if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
                row.last_used_at = now
            return user

    def check_browser_peer(self, address: str) -> None:
        """Unauthenticated when ``address`` (a client's, see ``web.peers``) may not
        start a browser's session: a workspace's own uid (``uid:<n>``, n at or above
        ``workspaces.uid_base``; no browser runs there, scripts use tokens) or an
        unattributed socket. Using one needs no check here: a session is bound to the
        local uid that started it (:func:`live_login`), never a workspace's, so a cookie
        a kernel's server received (on one machine over plain HTTP a server on another
        port of a host name receives that name's cookies) is refused there anyway."""
        uid = local_uid(address)
        if address in UNATTRIBUTED or (
            uid is not None and uid >= self.ctx.settings.workspaces.uid_base
        ):
            raise Unauthenticated(
                N_("A workspace cannot use or start a browser's session: scripts use an API token.")
            )

    def start_session(
        self,
        user: User,
        *,
        address: str = "",
        via: str = "password",
        provider_sid: str | None = None,
    ) -> tuple[str, LoginSession]:
        """Create a login session (``via``: "password" or "oidc", with the identity
        provider's session id when it gave one); return the cookie value (shown once)
        and the row. Refused to a workspace's address (:meth:`check_browser_peer`)."""
        self.check_browser_peer(address)
        value = secrets.token_urlsafe(32)
        row = LoginSession(
            id_hash=sha256(value),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(24),
            expires_at=utcnow() + timedelta(hours=self.auth.session_ttl_hours),
            local_uid=local_uid(address),
            via=via,
            provider_sid=provider_sid,
        )
        with self.ctx.sessions() as session, session.begin():
            session.add(row)
        return value, row

    def authenticate_session(
        self, cookie_value: str, address: str = ""
    ) -> tuple[User, LoginSession]:
        """The user and row of a live login session used from ``address`` (see
        :func:`live_login`)."""
        with self.ctx.sessions() as session:
            return live_login(session, sha256(cookie_value), address)

    def end_session(self, cookie_value: str, address: str = "") -> str | None:
        """End a login session (and the workspace sessions handed over from it) used
        from ``address`` (its browser's, see :func:`live_login`: a cookie taken
        elsewhere ends nothing); the username it was of, None when there was none."""
        with self.ctx.sessions() as session, session.begin():
            row = session.get(LoginSession, sha256(cookie_value))
            if row is None or not _used_by_its_browser(row, address):
                return None
            user = session.get(User, row.user_id)
            session.delete(row)
            return user.username if user else None

    def change_password(
        self,
        actor: Actor,
        current: str,
        new: str,
        *,
        address: str,
        keep_session: str | None = None,
    ) -> None:
        """Replace the actor's password after checking the current one (as a login:
        rate-limited and audited, so the form cannot be used to guess it) and the
        policy; every other login session of the user ends."""
        try:
            self.login_password(
                actor.username, current, address=address, request_id=actor.request_id
            )
        except Unauthenticated:  # (a rate limit is its own error, and stays as it is)
            raise Unauthenticated(N_("The current password is wrong.")) from None
        check_password_policy(
            new, username=actor.username, min_length=self.auth.password_min_length
        )
        with self.ctx.sessions() as session, session.begin():
            user = self._user(session, actor.username)
            user.password_hash = hash_password(new)
            others = delete(LoginSession).where(LoginSession.user_id == user.id)
            if keep_session is not None:
                others = others.where(LoginSession.id_hash != sha256(keep_session))
            session.execute(others)
        self._audit(actor, "user.password", f"user:{actor.username}")

    # -- tokens ----------------------------------------------------------------
    def create_token(self, actor: Actor, data: TokenCreate) -> tuple[ApiToken, str]:
        if data.expires_in_days > self.auth.token_max_days:
            raise InvalidInput(f"expiresInDays must be at most {self.auth.token_max_days}.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            id=secrets.token_hex(8),
            user_id=actor.user_id,
            name=data.name,
            token_hash=sha256(token),
            expires_at=utcnow() + timedelta(days=data.expires_in_days),
        )
        with self.ctx.sessions() as session, session.begin():
            session.add(row)
        self._audit(actor, "token.create", f"token:{row.id}", details={"name": data.name})
        return row, token

    def list_tokens(self, actor: Actor) -> list[ApiToken]:
        with self.ctx.sessions() as session:
            return list(
                session.scalars(
                    select(ApiToken)
                    .where(ApiToken.user_id == actor.user_id, ApiToken.revoked_at.is_(None))
                    .order_by(ApiToken.created_at)
                ).all()
            )

    def revoke_token(self, actor: Actor, token_id: str) -> None:
        with self.ctx.sessions() as session, session.begin():
            row = session.get(ApiToken, token_id)
            if row is None or row.user_id != actor.user_id or row.revoked_at is not None:
                raise NotFound(N_("No such token."))
            row.revoked_at = utcnow()
        self._audit(actor, "token.revoke", f"token:{token_id}")

    def _audit(
        self,
        actor: Actor | None,
        action: str,
        target: str,
        *,
        details: dict[str, object] | None = None,
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username if actor else "system",
                action=action,
                target=target,
                request_id=actor.request_id if actor else "",
                details=dict(details or {}),
            )
        )
