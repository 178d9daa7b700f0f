"""Branches of a project: a git branch plus the data prefix ``<branch>/``.

Deleting a branch retires its prefix (:meth:`StorageProvider.retire_prefix`): the
objects vanish from listings and workspaces at once but stay in the bucket as
noncurrent versions for ``storage.retention_days``
(:mod:`balsam.domain.data.retention` purges them later). Undoing a create retires
the prefix too: a branch of that name deleted earlier keeps its retained data."""

from __future__ import annotations

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Branch
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.journal import Journal, crash_point
from balsam.domain.projects import naming
from balsam.domain.projects.access import require
from balsam.domain.projects.markers import marker_body, marker_key, marker_provenance
from balsam.domain.projects.schemas import BranchCreate
from balsam.domain.steps import Compensations
from balsam.errors import N_, Conflict, InvalidInput, NotFound

BRANCH_EXISTS = N_("The branch '%(name)s' already exists.")


class BranchService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.git = ctx.providers.git
        self.storage = ctx.providers.storage

    def list(self, actor: Actor, project_id: str) -> list[Branch]:
        with self.ctx.sessions() as session:
            project = require(self.ctx, session, actor, project_id, "member", "branch.list")
            return list(project.branches)

    def create(self, actor: Actor, project_id: str, data: BranchCreate) -> Branch:
        """Branch off ``fromBranch`` (default branch if absent); members only."""
        name = naming.validate_branch_name(data.name)
        with self.ctx.sessions() as session:
            project = require(self.ctx, session, actor, project_id, "member", "branch.create")
            source = data.from_branch or project.default_branch
            known = {b.id for b in project.branches}
            if source not in known:
                raise InvalidInput(f"fromBranch '{source}' is not a branch of this project.")
            if name in known:
                raise Conflict(BRANCH_EXISTS, params={"name": name})
        undo = Compensations()
        with Journal(self.ctx).running("branch.create", project_id, actor, name, undo=undo):
            try:
                self.git.create_branch(project_id, name, from_branch=source)
            except Conflict:  # created meanwhile (the provider's words name its internals)
                raise Conflict(BRANCH_EXISTS, params={"name": name}) from None
            undo.push("git branch", lambda: self.git.delete_branch(project_id, name))
            crash_point("branch.create", "git")
            undo.push("marker", lambda: self.storage.retire_prefix(project.bucket, f"{name}/"))
            # A write that timed out may land after the undo: the journal then keeps the
            # operation, and the repair retires the prefix again once storage answers.
            undo.attempt(
                "marker",
                lambda: self.storage.put_object(
                    project.bucket, marker_key(name), marker_body(project.name, name)
                ),
            )
            branch = Branch(project_id=project_id, id=name, description=data.description)
            body = marker_body(project.name, name)
            marker = marker_provenance(self.ctx, project_id, project.bucket, name, body,
                                       actor.username)  # fmt: skip
            with self.ctx.sessions() as session, session.begin():
                if session.get(Branch, (project_id, name)) is not None:
                    raise Conflict(BRANCH_EXISTS, params={"name": name})
                session.add(branch)
                if marker is not None:
                    session.add(marker)
        self._audit(actor, "branch.create", project_id, name, {"from": source})
        return branch

    def delete(self, actor: Actor, project_id: str, branch_id: str) -> None:
        """Delete a branch and retire its data prefix (kept as versions for the
        retention period); never the default branch. Owners only: deleting is
        deliberate."""
        with self.ctx.sessions() as session:
            project = require(self.ctx, session, actor, project_id, "owner", "branch.delete")
            branch = session.get(Branch, (project_id, branch_id))
            if branch is None:
                raise NotFound(f"No branch '{branch_id}' in this project.")
            if branch.is_default:
                raise Conflict("The default branch cannot be deleted.")
            bucket = project.bucket
        with Journal(self.ctx).running("branch.delete", project_id, actor, branch_id):
            retired = self.storage.retire_prefix(bucket, f"{branch_id}/")
            crash_point("branch.delete", "data")
            self.git.delete_branch(project_id, branch_id)
            with self.ctx.sessions() as session, session.begin():
                row = session.get(Branch, (project_id, branch_id))
                if row is not None:
                    session.delete(row)
        self._audit(
            actor,
            "branch.delete",
            project_id,
            branch_id,
            {"retiredObjects": retired, "retentionDays": self.ctx.settings.storage.retention_days},
        )

    def get(self, actor: Actor, project_id: str, branch_id: str) -> Branch:
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", "branch.read")
            branch = session.scalar(
                select(Branch).where(Branch.project_id == project_id, Branch.id == branch_id)
            )
            if branch is None:
                raise NotFound(f"No branch '{branch_id}' in this project.")
            return branch

    def _audit(
        self, actor: Actor, action: str, project_id: str, branch: str, details: dict[str, object]
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/branch:{branch}",
                project_id=project_id,
                request_id=actor.request_id,
                details=details,
            )
        )
