"""Workspace service: create, list, read, start, stop and delete workspaces.

Rules:

* Any member creates workspaces on their project's branches; they own them.
* Members and admins see a project's workspaces; others get 404.
* The owner starts, stops and deletes a workspace; project owners and admins
  may stop and delete it too (housekeeping), never open it.
* A locked workspace (its owner left the project) cannot start.
* Where workspaces are not isolated (local provider, not root), they run for one
  user only unless an admin says otherwise (:mod:`.isolation`).

Creating is all-or-nothing: S3 key (a project credential) → secrets file →
row; start then runs in the background (:class:`WorkspaceSupervisor`) and the
caller polls ``state``. Deleting revokes the S3 key and the git token. Both are
journaled (:mod:`balsam.domain.journal`): a crash in between is repaired at the
next start (:mod:`balsam.domain.recovery`).
"""

from __future__ import annotations

import secrets as random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import Branch, Credential, Membership, User, Workspace
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor, sha256
from balsam.domain.journal import Journal, crash_point
from balsam.domain.projects.access import deny, require, role_of
from balsam.domain.projects.naming import slug_base
from balsam.domain.steps import Compensations
from balsam.domain.workspaces.isolation import WorkspacesNotIsolated, check_may_run, isolation
from balsam.domain.workspaces.schemas import (
    EnvironmentLock,
    TemplatePublic,
    WorkspaceCreate,
    WorkspaceEnvironment,
    WorkspacePublic,
)
from balsam.domain.workspaces.templates import WorkspaceTemplate
from balsam.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from balsam.providers.workspaces.base import WorkspaceSecrets

#: Prefix of workspace git tokens (public, so git.py can tell them from API tokens).
GIT_TOKEN_PREFIX = "bws_"  # noqa: S105


def workspace_url(workspace_id: str) -> str:
    return f"/workspaces/{workspace_id}/"


class WorkspaceService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.provider = ctx.providers.workspaces

    # -- templates ---------------------------------------------------------------------

    def templates(self) -> list[TemplatePublic]:
        return [
            TemplatePublic(
                id=t.id,
                name=t.name,
                description=t.description,
                requirements=list(t.requirements),
                memory_mib=t.memory_mib,
                cpu=t.cpu,
                idle_timeout_minutes=t.idle_timeout_minutes,
                environment=self._environment(t.environment.name, t),
            )
            for t in self.ctx.templates.values()
        ]

    def template(self, template_id: str) -> WorkspaceTemplate:
        template = self.ctx.templates.get(template_id)
        if template is None:
            raise InvalidInput(f"No workspace template '{template_id}'.")
        return template

    def _environment(self, name: str, template: WorkspaceTemplate | None) -> EnvironmentLock:
        packages = None
        if template is not None and template.environment.name == name:
            packages = self.provider.environment_lock(template.environment)
        return EnvironmentLock(name=name, packages=packages)

    # -- reading -----------------------------------------------------------------------

    def public(self, ws: Workspace) -> WorkspacePublic:
        """The API shape. ``environment``: the lock recorded when it last started, or
        (before its first start) the template's, once built."""
        lock = (
            EnvironmentLock(name=ws.environment, packages=ws.environment_lock)
            if ws.environment_lock
            else self._environment(ws.environment, self.ctx.templates.get(ws.template_id))
        )
        environment = WorkspaceEnvironment(
            name=lock.name, packages=lock.packages, user_packages=ws.user_packages
        )
        return WorkspacePublic(
            id=ws.id,
            name=ws.name,
            template_id=ws.template_id,
            project_id=ws.project_id,
            branch_id=ws.branch,
            url=workspace_url(ws.id),
            owner=ws.owner.username,
            state=ws.state,  # type: ignore[arg-type]
            state_reason=ws.state_reason,
            locked=ws.locked,
            created_at=ws.created_at,
            last_activity_at=ws.last_activity_at,
            environment=environment,
            isolation=isolation(self.provider),
        )

    def list_for(
        self,
        actor: Actor,
        *,
        project_id: str | None = None,
        branch_id: str | None = None,
        all_visible: bool = True,
    ) -> list[Workspace]:
        """``all_visible``: every workspace of the actor's projects (every workspace
        for admins); otherwise only the actor's own."""
        with self.ctx.sessions() as session:
            stmt = select(Workspace).order_by(Workspace.created_at)
            if project_id is not None:
                require(self.ctx, session, actor, project_id, "member", "workspace.list")
                stmt = stmt.where(Workspace.project_id == project_id)
            if branch_id is not None:
                stmt = stmt.where(Workspace.branch == branch_id)
            if not all_visible:
                stmt = stmt.where(Workspace.owner_id == actor.user_id)
            elif not actor.is_admin:
                stmt = stmt.where(
                    Workspace.project_id.in_(
                        select(Membership.project_id).where(Membership.user_id == actor.user_id)
                    )
                )
            return list(session.scalars(stmt).all())

    def get(self, actor: Actor, workspace_id: str) -> Workspace:
        with self.ctx.sessions() as session:
            return self._visible(session, actor, workspace_id, "workspace.get")

    def _visible(self, session: Session, actor: Actor, workspace_id: str, action: str) -> Workspace:
        ws = session.get(Workspace, workspace_id)
        if ws is None:
            raise NotFound(f"No workspace '{workspace_id}'.")
        if not actor.is_admin and role_of(session, actor, ws.project_id) is None:
            deny(self.ctx, actor, ws.project_id, action, "not a member")
            raise NotFound(f"No workspace '{workspace_id}'.")
        return ws

    def _manageable(
        self,
        session: Session,
        actor: Actor,
        workspace_id: str,
        action: str,
        *,
        owner_only: bool = False,
    ) -> Workspace:
        ws = self._visible(session, actor, workspace_id, action)
        allowed = (
            ws.owner_id == actor.user_id
            or actor.is_admin
            or (not owner_only and role_of(session, actor, ws.project_id) == "owner")
        )
        if not allowed:
            deny(self.ctx, actor, ws.project_id, action, "not the workspace's owner")
            raise Forbidden("Only the workspace's owner can do this.")
        return ws

    # -- lifecycle ---------------------------------------------------------------------

    def create(self, actor: Actor, data: WorkspaceCreate) -> Workspace:
        with self.ctx.sessions() as session:
            project = require(
                self.ctx, session, actor, data.project_id, "member", "workspace.create"
            )
            template = self.template(data.template_id)
            if session.get(Branch, (project.id, data.branch_id)) is None:
                raise NotFound(f"No branch '{data.branch_id}' in project '{project.id}'.")
            self._check_may_run(session, actor)
            self._check_count(session, actor)
            bucket = project.bucket
        workspace_id = f"{slug_base(data.name)[:40].strip('-') or 'ws'}-{random.token_hex(3)}"
        git_token = GIT_TOKEN_PREFIX + random.token_urlsafe(32)
        storage, store = self.ctx.providers.storage, self.ctx.workspace_secrets
        undo = Compensations()
        with Journal(self.ctx).running(
            "workspace.create", project.id, actor, workspace_id, undo=undo
        ):
            key = undo.attempt(
                "key",
                lambda: storage.create_key(
                    bucket, label=f"{actor.username}@{project.id}/{workspace_id}"
                ),
            )
            undo.push("key", lambda: storage.revoke_key(key.access_key))
            crash_point("workspace.create", "key")
            store.save(
                workspace_id,
                WorkspaceSecrets(
                    s3_access_key=key.access_key,
                    s3_secret_key=key.secret_key,
                    git_username=actor.username,
                    git_token=git_token,
                    server_token=random.token_urlsafe(32),
                ),
            )
            undo.push("secrets", lambda: store.delete(workspace_id))
            with self.ctx.sessions() as session, session.begin():
                session.add(
                    Credential(
                        access_key=key.access_key,
                        project_id=project.id,
                        user_id=actor.user_id,
                        name=f"workspace {workspace_id}",
                    )
                )
                session.add(
                    Workspace(
                        id=workspace_id,
                        name=data.name,
                        project_id=project.id,
                        branch=data.branch_id,
                        template_id=template.id,
                        environment=template.environment.name,
                        owner_id=actor.user_id,
                        state="pending",
                        state_reason="Waiting to start",
                        locked=False,
                        s3_access_key=key.access_key,
                        git_token_hash=sha256(git_token),
                    )
                )
        self._recheck_created(actor, workspace_id)
        self._audit(
            actor,
            "workspace.create",
            project.id,
            workspace_id,
            {"branch": data.branch_id, "template": template.id},
        )
        self.ctx.supervisor.submit_start(workspace_id)
        return self.get(actor, workspace_id)

    def start(self, actor: Actor, workspace_id: str) -> Workspace:
        with self.ctx.sessions() as session, session.begin():
            ws = self._manageable(session, actor, workspace_id, "workspace.start", owner_only=True)
            if ws.locked:
                raise Conflict("This workspace is locked: its owner is no longer a member.")
            self._check_may_run(session, actor)
            if ws.state in ("pending", "running"):
                return ws
            ws.state, ws.state_reason = "pending", "Waiting to start"
            project_id = ws.project_id
        self._audit(actor, "workspace.start", project_id, workspace_id)
        self.ctx.supervisor.submit_start(workspace_id)
        return self.get(actor, workspace_id)

    def _check_may_run(self, session: Session, actor: Actor) -> None:
        check_may_run(session, self.provider, self.ctx.settings, actor.user_id)

    def _check_count(self, session: Session, actor: Actor) -> None:
        limit = self.ctx.settings.workspaces.max_per_user
        have = session.scalar(
            select(func.count()).select_from(Workspace).where(Workspace.owner_id == actor.user_id)
        )
        if (have or 0) >= limit:
            raise _too_many(limit)

    def _recheck_created(self, actor: Actor, workspace_id: str) -> None:
        """Two users creating the first workspace at once both passed the check;
        now both rows are visible and the earliest decides: the other is undone. So
        for the count per person: creations at once all passed it, and those beyond the
        limit (the latest) are undone."""
        try:
            with self.ctx.sessions() as session:
                self._check_may_run(session, actor)
                limit = self.ctx.settings.workspaces.max_per_user
                kept = session.scalars(
                    select(Workspace.id)
                    .where(Workspace.owner_id == actor.user_id)
                    .order_by(Workspace.created_at, Workspace.id)
                    .limit(limit)
                ).all()
            if workspace_id not in kept:
                raise _too_many(limit)
        except (WorkspacesNotIsolated, Conflict):
            self.remove(workspace_id)
            raise

    def stop(self, actor: Actor, workspace_id: str) -> Workspace:
        with self.ctx.sessions() as session:
            ws = self._manageable(session, actor, workspace_id, "workspace.stop")
            project_id = ws.project_id
        self._audit(actor, "workspace.stop", project_id, workspace_id)
        self.ctx.supervisor.submit_stop(workspace_id, f"Stopped by {actor.username}")
        return self.get(actor, workspace_id)

    def delete(
        self,
        actor: Actor,
        workspace_id: str,
        *,
        project_id: str | None = None,
        branch_id: str | None = None,
    ) -> None:
        """Stop the server, remove the home, revoke the S3 key and git token."""
        with self.ctx.sessions() as session:
            ws = self._manageable(session, actor, workspace_id, "workspace.delete")
            if (project_id not in (None, ws.project_id)) or (branch_id not in (None, ws.branch)):
                raise NotFound(f"No workspace '{workspace_id}' on that project and branch.")
            owner = ws.project_id
        with Journal(self.ctx).running("workspace.delete", owner, actor, workspace_id):
            self.remove(workspace_id)
        self._audit(actor, "workspace.delete", owner, workspace_id)

    def remove(self, workspace_id: str) -> None:
        """Delete without access checks (project deletion, tests, crash repair).
        Idempotent: each step can be repeated after a crash in a later one."""
        self.ctx.supervisor.forget(workspace_id)
        self.provider.delete(workspace_id)
        crash_point("workspace.delete", "server")
        with self.ctx.sessions() as session, session.begin():
            ws = session.get(Workspace, workspace_id)
            if ws is not None:
                if ws.s3_access_key:
                    self.ctx.providers.storage.revoke_key(ws.s3_access_key)
                    crash_point("workspace.delete", "key")
                    credential = session.get(Credential, ws.s3_access_key)
                    if credential is not None:
                        session.delete(credential)
                session.delete(ws)
        self.ctx.workspace_secrets.delete(workspace_id)

    def lock_for(self, session: Session, project_id: str, user_id: int) -> list[str]:
        """Lock (and have stopped) a removed member's workspaces on a project, in the
        caller's transaction. Returns their ids."""
        rows = list(
            session.scalars(
                select(Workspace).where(
                    Workspace.project_id == project_id, Workspace.owner_id == user_id
                )
            ).all()
        )
        for ws in rows:
            ws.locked, ws.git_token_hash = True, None
            ws.state_reason = "Locked: the owner is no longer a member of the project"
        return [ws.id for ws in rows]

    # -- git ---------------------------------------------------------------------------

    def git_user(self, token: str, username: str) -> tuple[User, str] | None:
        """``(owner, project id)`` for a live workspace git token, else None."""
        with self.ctx.sessions() as session:
            ws = session.scalar(select(Workspace).where(Workspace.git_token_hash == sha256(token)))
            if ws is None or ws.locked or ws.owner.username != username or not ws.owner.is_active:
                return None
            return ws.owner, ws.project_id

    def _audit(
        self,
        actor: Actor,
        action: str,
        project_id: str,
        workspace_id: str,
        details: dict[str, object] | None = None,
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/workspace:{workspace_id}",
                project_id=project_id,
                request_id=actor.request_id,
                details=dict(details or {}),
            )
        )


def _too_many(limit: int) -> Conflict:
    return Conflict(
        N_("The most workspaces one person may have is %(count)s; delete one first."),
        params={"count": limit},
    )
