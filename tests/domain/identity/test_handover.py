"""The workspaces' host's sessions: handed over from a login session by a one-time
ticket, ending with it, and never taken for anything else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import AuditEvent, WorkspaceSession, utcnow
from balsam.domain.identity.handover import WorkspaceSessions
from balsam.domain.identity.schemas import UserUpdate
from balsam.domain.identity.service import IdentityService, sha256
from balsam.errors import Unauthenticated
from tests.fixtures.app import TestUser


def _login(ctx: AppContext, user: TestUser) -> str:
    identity = IdentityService(ctx)
    cookie, _ = identity.start_session(identity.get_user(user.username))
    return cookie


def test_a_ticket_becomes_a_session_once(ctx: AppContext, alice: TestUser) -> None:
    sessions = WorkspaceSessions(ctx)
    ticket = sessions.issue_ticket(_login(ctx, alice))
    value, seconds = sessions.redeem(ticket, "req-handover")
    assert sessions.authenticate(value).username == alice.username
    with ctx.sessions() as session:  # audited as a login is, once
        audited = session.scalars(
            select(AuditEvent).where(AuditEvent.request_id == "req-handover")
        ).all()
    assert [(e.action, e.actor, e.outcome) for e in audited] == [
        ("auth.workspace_session", alice.username, "success")
    ]
    assert 0 < seconds <= ctx.settings.auth.session_ttl_hours * 3600
    with pytest.raises(Unauthenticated):
        sessions.redeem(ticket)  # once only
    with pytest.raises(Unauthenticated):
        sessions.authenticate(ticket)  # a ticket opens nothing itself
    with pytest.raises(Unauthenticated):
        sessions.redeem(value)  # nor is a session a ticket
    with ctx.sessions() as session:  # only digests are kept
        stored = session.scalars(select(WorkspaceSession.id_hash)).all()
    assert value not in stored and ticket not in stored and sha256(value) in stored


def test_no_other_secret_passes_for_one(ctx: AppContext, alice: TestUser) -> None:
    sessions = WorkspaceSessions(ctx)
    login = _login(ctx, alice)
    with pytest.raises(Unauthenticated):
        sessions.authenticate(login)  # the portal's cookie is not the workspaces'
    with pytest.raises(Unauthenticated):
        sessions.redeem(login)
    with pytest.raises(Unauthenticated):
        sessions.issue_ticket("no-such-session")
    value, _ = sessions.redeem(sessions.issue_ticket(login))
    with pytest.raises(Unauthenticated):
        IdentityService(ctx).authenticate_session(value)  # nor the other way round


def test_an_old_ticket_is_refused(ctx: AppContext, alice: TestUser) -> None:
    sessions = WorkspaceSessions(ctx)
    ticket = sessions.issue_ticket(_login(ctx, alice))
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(WorkspaceSession)
            .where(WorkspaceSession.id_hash == sha256(ticket))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(Unauthenticated):
        sessions.redeem(ticket)
    with ctx.sessions() as session:  # and cleared away by that redemption
        assert session.get(WorkspaceSession, sha256(ticket)) is None


@pytest.mark.parametrize("ending", ["logout", "password reset", "deactivation"])
def test_the_session_ends_with_its_login(
    ctx: AppContext, alice: TestUser, admin: TestUser, ending: str
) -> None:
    sessions = WorkspaceSessions(ctx)
    identity = IdentityService(ctx)
    login = _login(ctx, alice)
    value, _ = sessions.redeem(sessions.issue_ticket(login))
    waiting = sessions.issue_ticket(login)
    if ending == "logout":
        assert identity.end_session(login) == alice.username
    elif ending == "password reset":
        identity.reset_password(admin.actor, alice.username)
    else:
        identity.update_user(admin.actor, alice.username, UserUpdate(is_active=False))
    with pytest.raises(Unauthenticated):
        sessions.authenticate(value)
    with pytest.raises(Unauthenticated):
        sessions.redeem(waiting)
    with ctx.sessions() as session:  # nothing is left behind
        assert session.get(WorkspaceSession, sha256(value)) is None


def test_other_users_sessions_go_on(
    ctx: AppContext, make_user: Callable[..., TestUser], alice: TestUser
) -> None:
    sessions = WorkspaceSessions(ctx)
    bob = make_user("bob")
    mine = sessions.redeem(sessions.issue_ticket(_login(ctx, alice)))[0]
    bobs_login = _login(ctx, bob)
    sessions.redeem(sessions.issue_ticket(bobs_login))
    IdentityService(ctx).end_session(bobs_login)
    assert sessions.authenticate(mine).username == alice.username
