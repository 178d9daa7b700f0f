"""Project service: create, list, read, update and delete projects.

Creating a project is all-or-nothing: repository → bucket → branch marker →
owner's S3 key → database rows. A failure at any step undoes the earlier
ones (see :mod:`balsam.domain.steps`) and is audited with what was undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import Branch, Credential, Membership, Project, Workspace
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.journal import Journal, crash_point
from balsam.domain.library.reuse import project_source
from balsam.domain.projects import naming
from balsam.domain.projects.access import deny, require, role_of
from balsam.domain.projects.markers import marker_body, marker_key, marker_provenance
from balsam.domain.projects.schemas import ProjectCreate, ProjectUpdate
from balsam.domain.projects.sources import check_public_source
from balsam.domain.steps import Compensations
from balsam.domain.workspaces.service import WorkspaceService
from balsam.errors import N_, BalsamError, Conflict, Forbidden, InvalidInput, NotFound
from balsam.providers.git.base import Author
from balsam.providers.storage.base import ScopedKey
from balsam.settings import PROJECT_GROUP_PREFIX

GITIGNORE = """\
# Python
__pycache__/
*.py[cod]
.venv/
venv/
.eggs/
*.egg-info/
# R
.Rhistory
.RData
.Rproj.user/
# Jupyter
.ipynb_checkpoints/
# Data belongs in the project bucket, not in git
*.parquet
*.feather
.env
"""

GITATTRIBUTES = """\
# Strip notebook outputs on commit when nbstripout is installed in the workspace.
*.ipynb filter=nbstripout
*.ipynb diff=ipynb
"""


def auth_group(project_id: str) -> str:
    return f"{PROJECT_GROUP_PREFIX}{project_id}"


def initial_files(name: str, description: str) -> dict[str, bytes]:
    readme = f"# {name}\n\n{description}\n" if description else f"# {name}\n"
    return {
        "README.md": readme.encode(),
        ".gitignore": GITIGNORE.encode(),
        ".gitattributes": GITATTRIBUTES.encode(),
    }


@dataclass(frozen=True)
class Start:
    """Where a new repository's files come from."""

    files: dict[str, bytes]
    source_url: str | None
    label: str
    location: str | None


@dataclass(frozen=True)
class CreatedProject:
    project: Project
    key: ScopedKey


class ProjectService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.git = ctx.providers.git
        self.storage = ctx.providers.storage

    # -- create ----------------------------------------------------------------
    def create(self, actor: Actor, data: ProjectCreate) -> CreatedProject:
        name = naming.validate_display_name(data.name)
        branch = naming.validate_branch_name(data.branch_name)
        start = self._starting_point(data)
        self._validate_source(start.source_url)
        with self.ctx.sessions() as session:
            if session.scalar(select(Project.id).where(Project.name_key == naming.name_key(name))):
                raise Conflict(
                    N_("A project named '%(name)s' already exists."),
                    details={"field": "name"},
                    params={"name": name},
                )
            project_id = self._free_id(session, name)
        undo = Compensations()
        try:
            with Journal(self.ctx).running("project.create", project_id, actor, undo=undo):
                try:
                    key = self._provision(
                        undo, actor, project_id, name, branch, data.description, start
                    )
                except Conflict:  # the provider's words name its internals
                    raise Conflict(
                        f"The project id '{project_id}' is taken by a project being created "
                        "or deleted right now; try again shortly."
                    ) from None
                project = self._insert(actor, project_id, name, branch, data, key, start.location)
                crash_point("project.create", "insert")
        except BalsamError as exc:
            self._audit_failure(actor, project_id, undo, exc)
            if isinstance(exc, InvalidInput | Conflict):
                raise
            outcome = (
                "failed; what it made is removed as soon as storage answers"
                if undo.failed
                else "failed and was undone"
            )
            raise type(exc)(f"Creating the project {outcome}: {exc.message}") from exc
        except Exception as exc:
            self._audit_failure(actor, project_id, undo, exc)
            raise
        self._audit(
            actor,
            "project.create",
            project_id,
            details={"name": name, "branch": branch, "source": start.location},
        )
        return CreatedProject(project=project, key=key)

    def _provision(
        self,
        undo: Compensations,
        actor: Actor,
        project_id: str,
        name: str,
        branch: str,
        description: str,
        start: Start,
    ) -> ScopedKey:
        """The provider steps of create, each registering its inverse."""
        git, storage = self.git, self.storage
        undo.step(
            "repository",
            lambda: git.create_repository(
                project_id,
                default_branch=branch,
                files={**initial_files(name, description), **start.files},
                message=f"Create project {name}" + (f" from {start.label}" if start.label else ""),
                author=Author(actor.username, f"{actor.username}@balsam.local"),
                source_url=start.source_url,
            ),
            lambda: git.delete_repository(project_id),
            keep_on=(Conflict,),
        )
        crash_point("project.create", "repository")
        undo.step(
            "bucket",
            lambda: storage.create_bucket(project_id),
            lambda: storage.delete_bucket(project_id),
            keep_on=(Conflict,),
        )
        crash_point("project.create", "bucket")
        storage.put_object(project_id, marker_key(branch), marker_body(name, branch))
        # A key that was made but not returned can only be found through its bucket.
        key = undo.step(
            "key",
            lambda: storage.create_key(project_id, label=f"{actor.username}@{project_id}"),
            lambda: storage.revoke_bucket_keys(project_id),
        )
        crash_point("project.create", "key")
        return key

    def _insert(
        self,
        actor: Actor,
        project_id: str,
        name: str,
        branch: str,
        data: ProjectCreate,
        key: ScopedKey,
        location: str | None,
    ) -> Project:
        project = Project(
            id=project_id,
            name=name,
            name_key=naming.name_key(name),
            description=data.description,
            default_branch=branch,
            bucket=project_id,
            source_location=location,
            created_by=actor.user_id,
        )
        try:
            with self.ctx.sessions() as session, session.begin():
                session.add(project)
                session.add(Branch(project_id=project_id, id=branch, is_default=True))
                session.flush()
                session.add(Membership(project_id=project_id, user_id=actor.user_id, role="owner"))
                body = marker_body(name, branch)
                marker = marker_provenance(self.ctx, project_id, project_id, branch, body,
                                           actor.username)  # fmt: skip
                if marker is not None:
                    session.add(marker)
                session.add(
                    Credential(
                        access_key=key.access_key,
                        project_id=project_id,
                        user_id=actor.user_id,
                        name="created with project",
                    )
                )
        except IntegrityError:
            raise Conflict(
                N_("A project named '%(name)s' already exists."),
                details={"field": "name"},
                params={"name": name},
            ) from None
        return self.get(actor, project_id)

    def _free_id(self, session: Session, name: str) -> str:
        for candidate in naming.project_id_candidates(name):
            taken = session.get(Project, candidate) is not None
            if (
                not taken
                and not self.git.repository_exists(candidate)
                and not self.storage.bucket_exists(candidate)
            ):
                return candidate
        raise Conflict("Could not find a free project id; try another name.")

    def _starting_point(self, data: ProjectCreate) -> Start:
        """The files or git URL the repository starts from (none: an empty project)."""
        if data.source is not None and data.source_location:
            raise InvalidInput("Give either sourceLocation or source, not both.")
        if data.source is not None:
            try:
                found = project_source(self.ctx, data.source.library_id, data.source.path)
            except NotFound as exc:
                raise InvalidInput(f"source: {exc.message}") from None
            return Start(
                files=found.files,
                source_url=found.source_url,
                label=found.label,
                location=found.location,
            )
        url = (data.source_location or "").strip() or None
        return Start(files={}, source_url=url, label=url or "", location=url)

    def _validate_source(self, source: str | None) -> str | None:
        """Accept http(s) git URLs, and file:// URLs inside ``source_file_roots``."""
        if source is None or not source.strip():
            return None
        source = source.strip()
        if source.startswith(("https://", "http://")):
            check_public_source(source, self.ctx.settings.source_private_hosts)
            return source
        if source.startswith("file://"):
            path = Path(unquote(urlsplit(source).path)).resolve()
            roots = [r.resolve() for r in self.ctx.settings.source_file_roots]
            if any(path.is_relative_to(root) for root in roots):
                return source
            raise InvalidInput(
                "file:// sources are only allowed from the folders an "
                "administrator lists in BALSAM_SOURCE_FILE_ROOTS."
            )
        raise InvalidInput("sourceLocation must be an http(s):// or file:// git URL.")

    # -- read ------------------------------------------------------------------
    def get(self, actor: Actor, project_id: str) -> Project:
        with self.ctx.sessions() as session:
            return require(self.ctx, session, actor, project_id, "member", "project.read")

    def require_owner(self, actor: Actor, project_id: str, action: str) -> Project:
        with self.ctx.sessions() as session:
            return require(self.ctx, session, actor, project_id, "owner", action)

    def role(self, actor: Actor, project_id: str) -> str | None:
        with self.ctx.sessions() as session:
            return role_of(session, actor, project_id)

    def list(
        self, actor: Actor, *, include_all: bool, query: str = "", limit: int = 50, offset: int = 0
    ) -> tuple[list[tuple[Project, str | None]], int]:
        """Projects the actor may see with the actor's role in each (admins with
        ``include_all``: every project), filtered by ``query`` on id, name and
        description; newest first."""
        mine = and_(Membership.project_id == Project.id, Membership.user_id == actor.user_id)
        everything = actor.is_admin and include_all
        where = []
        if query:
            like = f"%{query.casefold()}%"
            where.append(
                or_(
                    Project.id.like(like),
                    Project.name_key.like(like),
                    func.lower(Project.description).like(like),
                )
            )
        page = (
            select(Project, Membership.role)
            .join(Membership, mine, isouter=everything)
            .where(*where)
            .order_by(Project.created_at.desc(), Project.id)
            .limit(limit)
            .offset(offset)
        )
        count = (
            select(func.count())
            .select_from(Project)
            .join(Membership, mine, isouter=everything)
            .where(*where)
        )
        with self.ctx.sessions() as session:
            total = session.scalar(count) or 0
            rows: list[tuple[Project, str | None]] = [
                (project, role) for project, role in session.execute(page)
            ]
            return rows, total

    # -- update / delete -------------------------------------------------------
    def update(self, actor: Actor, project_id: str, data: ProjectUpdate) -> Project:
        """Change what ``data`` names: the description (owners), the storage quota
        (administrators; null sets it back to the installation's default)."""
        fields = data.model_fields_set
        if not fields:
            raise InvalidInput(N_("Nothing to change."))
        changed: dict[str, object] = {}
        with self.ctx.sessions() as session, session.begin():
            project = require(self.ctx, session, actor, project_id, "owner", "project.update")
            if "storage_quota_bytes" in fields:
                if not actor.is_admin:
                    deny(self.ctx, actor, project_id, "project.update", "quota: not an admin")
                    raise Forbidden(N_("Only administrators set storage quotas."))
                project.storage_quota_bytes = data.storage_quota_bytes
                changed["storageQuotaBytes"] = data.storage_quota_bytes
            if "description" in fields:
                if data.description is None:
                    raise InvalidInput(N_("The description cannot be null."))
                project.description = data.description
                changed["description"] = True
        self._audit(actor, "project.update", project_id, details=changed)
        return self.get(actor, project_id)

    def delete(self, actor: Actor, project_id: str) -> None:
        """Delete its workspaces, revoke every key, then remove bucket, repository and
        rows (owner/admin)."""
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "owner", "project.delete")
            workspaces = session.scalars(
                select(Workspace.id).where(Workspace.project_id == project_id)
            ).all()
        with Journal(self.ctx).running("project.delete", project_id, actor):
            for workspace_id in workspaces:
                WorkspaceService(self.ctx).remove(workspace_id)
            with self.ctx.sessions() as session:
                keys = session.scalars(
                    select(Credential.access_key).where(Credential.project_id == project_id)
                ).all()
            for access_key in keys:
                self.storage.revoke_key(access_key)
            crash_point("project.delete", "keys")
            self.storage.delete_bucket(project_id)
            crash_point("project.delete", "bucket")
            self.git.delete_repository(project_id)
            with self.ctx.sessions() as session, session.begin():
                project = session.get(Project, project_id)
                if project is not None:
                    session.delete(project)
        self._audit(actor, "project.delete", project_id, details={"revokedKeys": len(keys)})

    # -- audit -----------------------------------------------------------------
    def _audit(
        self,
        actor: Actor,
        action: str,
        project_id: str,
        *,
        details: dict[str, object] | None = None,
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}",
                project_id=project_id,
                request_id=actor.request_id,
                details=dict(details or {}),
            )
        )

    def _audit_failure(
        self, actor: Actor, project_id: str, undo: Compensations, exc: Exception
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action="project.create",
                target=f"project:{project_id}",
                outcome="failure",
                request_id=actor.request_id,
                details={"error": str(exc)[:500], "undone": undo.undone, "notUndone": undo.failed},
            )
        )
