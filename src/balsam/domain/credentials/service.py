"""S3 credentials scoped to one project's bucket.

A member mints keys for themself; the secret is returned once and only the
storage server keeps it. Members list and revoke their own keys; owners and
admins see and revoke every key of the project.
"""

from __future__ import annotations

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Credential, User
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.journal import Journal, crash_point
from balsam.domain.projects.access import require, role_of
from balsam.domain.steps import Compensations
from balsam.errors import NotFound
from balsam.providers.storage.base import ScopedKey


class CredentialService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.storage = ctx.providers.storage

    def mint(self, actor: Actor, project_id: str, name: str) -> tuple[Credential, ScopedKey]:
        with self.ctx.sessions() as session:
            project = require(self.ctx, session, actor, project_id, "member", "credential.create")
        undo = Compensations()
        with Journal(self.ctx).running("credential.create", project_id, actor, undo=undo):
            key = undo.attempt(
                "key",
                lambda: self.storage.create_key(
                    project.bucket, label=f"{actor.username}@{project_id}"
                ),
            )
            undo.push("key", lambda: self.storage.revoke_key(key.access_key))
            crash_point("credential.create", "key")
            row = Credential(
                access_key=key.access_key, project_id=project_id, user_id=actor.user_id, name=name
            )
            with self.ctx.sessions() as session, session.begin():
                session.add(row)
        self._audit(actor, "credential.create", project_id, key.access_key)
        return row, key

    def list(self, actor: Actor, project_id: str) -> list[tuple[Credential, str]]:
        """``(credential, owner username)``; everyone's for owners and admins."""
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", "credential.list")
            stmt = (
                select(Credential, User.username)
                .join(User)
                .where(Credential.project_id == project_id)
                .order_by(Credential.created_at)
            )
            if not (actor.is_admin or role_of(session, actor, project_id) == "owner"):
                stmt = stmt.where(Credential.user_id == actor.user_id)
            return [(c, u) for c, u in session.execute(stmt)]

    def revoke(self, actor: Actor, project_id: str, access_key: str) -> None:
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", "credential.revoke")
            row = session.get(Credential, access_key)
            privileged = actor.is_admin or role_of(session, actor, project_id) == "owner"
            if (
                row is None
                or row.project_id != project_id
                or (row.user_id != actor.user_id and not privileged)
            ):
                raise NotFound("No such credential in this project.")
        with Journal(self.ctx).running("credential.revoke", project_id, actor, access_key):
            self.storage.revoke_key(access_key)
            crash_point("credential.revoke", "key")
            with self.ctx.sessions() as session, session.begin():
                row = session.get(Credential, access_key)
                if row is not None:
                    session.delete(row)
        self._audit(actor, "credential.revoke", project_id, access_key)

    def _audit(self, actor: Actor, action: str, project_id: str, access_key: str) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/credential:{access_key}",
                project_id=project_id,
                request_id=actor.request_id,
            )
        )
