"""The workspaces' host's sessions, handed over from the portal's.

Workspaces are served on a host name of their own (see :mod:`balsam.web.origins`),
which the portal's session cookie does not reach. A logged-in portal page asks for
a *ticket* (:meth:`WorkspaceSessions.issue_ticket`) and posts it to the workspace
host, which exchanges it (:meth:`WorkspaceSessions.redeem`) for a cookie of its
own. Contract:

* A ticket is random (:mod:`secrets`), redeemable once, for
  :data:`TICKET_SECONDS`; only SHA-256 digests are stored.
* A workspace session lives as long as the login session it came from, and ends
  with it (logout, password change or reset, deactivation: the rows cascade).
* Neither a ticket nor a workspace session is a login session: the portal and the
  API never accept them, and a login session is never accepted here.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import User, WorkspaceSession, utcnow
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import live_login, sha256
from balsam.errors import N_, Unauthenticated

#: How long a ticket may take from the portal's page to the workspace host.
TICKET_SECONDS = 60
EXPIRED = N_("The hand-over has expired; open the workspace again from the portal.")


class WorkspaceSessions:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def issue_ticket(self, login_cookie: str) -> str:
        """A one-time ticket for the live login session whose cookie this is;
        Unauthenticated when there is none."""
        ticket = secrets.token_urlsafe(32)
        now = utcnow()
        with self.ctx.sessions() as session, session.begin():
            _sweep(session)
            _, login = live_login(session, sha256(login_cookie))
            session.add(
                WorkspaceSession(
                    id_hash=sha256(ticket),
                    login_session_hash=login.id_hash,
                    is_ticket=True,
                    expires_at=min(login.expires_at, now + timedelta(seconds=TICKET_SECONDS)),
                )
            )
        return ticket

    def redeem(self, ticket: str, request_id: str = "", address: str = "") -> tuple[str, int]:
        """Exchange a ticket (once) for a workspace session: its cookie value and
        the seconds it has left; audited (``auth.workspace_session``) as a login is.
        Unauthenticated for an unknown, used or expired ticket, or one whose login
        session has ended (not audited: nobody is known, and anyone may post)."""
        value = secrets.token_urlsafe(32)
        now = utcnow()
        with self.ctx.sessions() as session, session.begin():
            _sweep(session)  # kept even when this redemption fails
        with self.ctx.sessions() as session, session.begin():
            # Taken in one statement: a second redemption finds nothing (on PostgreSQL
            # a concurrent one waits on the row lock, then deletes none).
            login_hash = session.scalar(
                delete(WorkspaceSession)
                .where(
                    WorkspaceSession.id_hash == sha256(ticket),
                    WorkspaceSession.is_ticket,
                    WorkspaceSession.expires_at > now,
                )
                .returning(WorkspaceSession.login_session_hash)
            )
            if login_hash is None:
                raise Unauthenticated(EXPIRED)
            user, login = live_login(session, login_hash, address)
            username = user.username
            session.add(
                WorkspaceSession(
                    id_hash=sha256(value),
                    login_session_hash=login.id_hash,
                    is_ticket=False,
                    expires_at=login.expires_at,
                )
            )
            seconds = int((login.expires_at - now).total_seconds())
        self.ctx.audit.record(
            AuditRecord(
                actor=username,
                action="auth.workspace_session",
                target=f"user:{username}",
                request_id=request_id,
            )
        )
        return value, max(seconds, 1)

    def authenticate(self, cookie_value: str, address: str = "") -> User:
        """The user of a live workspace session used from ``address`` (bound as its
        login session is, see ``live_login``); Unauthenticated otherwise."""
        now = utcnow()
        with self.ctx.sessions() as session:
            login_hash = session.scalar(
                select(WorkspaceSession.login_session_hash).where(
                    WorkspaceSession.id_hash == sha256(cookie_value),
                    WorkspaceSession.is_ticket.is_(False),
                    WorkspaceSession.expires_at > now,
                )
            )
            if login_hash is None:
                raise Unauthenticated("The session has expired; log in again.")
            return live_login(session, login_hash, address)[0]


def _sweep(session: Session) -> None:
    """Remove expired tickets and sessions: the table holds live rows only (each
    issue and redemption sweeps, so unused tickets do not pile up)."""
    session.execute(delete(WorkspaceSession).where(WorkspaceSession.expires_at <= utcnow()))
