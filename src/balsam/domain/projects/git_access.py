"""Who may fetch from and push to a project's repository over git's smart HTTP.

The same rule as the API's: members of the project (and admins) read and push;
what a push may change is decided by git's receive hooks
(:mod:`balsam.domain.projects.pushes`). Credentials are a username with a
personal API token, a workspace's git token (valid for its own project's
repository only) or a password (under the login rate limit).

Refusals of members are audited (``git.denied``); fetches are audited
(``git.fetch``); pushes are audited with the refs they changed, after git has
run (``git.push``).
"""

from __future__ import annotations

from balsam.context import AppContext
from balsam.db.models import Project, User
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import TOKEN_PREFIX, Actor, IdentityService
from balsam.domain.projects.access import role_of
from balsam.domain.workspaces.service import GIT_TOKEN_PREFIX, WorkspaceService
from balsam.errors import Forbidden, Unauthenticated


class GitAccess:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def authenticate(
        self, username: str, secret: str, repo: str, *, address: str, request_id: str
    ) -> Actor:
        """The user behind the credentials, or Unauthenticated / RateLimited."""
        user = self._user(username, secret, repo, address=address, request_id=request_id)
        return Actor(user.id, user.username, user.is_admin, request_id, address)

    def _user(
        self, username: str, secret: str, repo: str, *, address: str, request_id: str
    ) -> User:
        identity = IdentityService(self.ctx)
        if secret.startswith(GIT_TOKEN_PREFIX):
            found = WorkspaceService(self.ctx).git_user(secret, username)
            if found is None:
                raise Unauthenticated("The workspace token is invalid or revoked.")
            if found[1] != repo:
                raise Unauthenticated("This workspace token is for another project.")
            return found[0]
        if secret.startswith(TOKEN_PREFIX):
            user = identity.authenticate_token(secret)
            if user.username != username:
                raise Unauthenticated("The token does not belong to this user.")
            return user
        return identity.login_password(username, secret, address=address, request_id=request_id)

    def authorize(self, actor: Actor, repo: str, *, write: bool, fetch: bool) -> None:
        """Let a member (or an admin) in; else audit the refusal and raise Forbidden
        (also for a project that does not exist: nothing tells the two apart).
        ``fetch``: the request transfers objects to the client (audited)."""
        with self.ctx.sessions() as session:
            allowed = session.get(Project, repo) is not None and (
                actor.is_admin or role_of(session, actor, repo) is not None
            )
        if not allowed:
            self._audit(actor, "git.denied", repo, "denied", write=write)
            raise Forbidden("You are not a member of this project.")
        if fetch:
            self._audit(actor, "git.fetch", repo, "success")

    def _audit(
        self, actor: Actor, action: str, project_id: str, outcome: str, **details: object
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username[:64],
                action=action,
                target=f"git:{project_id}"[:300],
                project_id=project_id if outcome != "denied" else None,
                outcome=outcome,  # type: ignore[arg-type]
                request_id=actor.request_id,
                details=dict(details),
            )
        )
