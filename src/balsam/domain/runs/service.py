"""Asking for runs, following them, cancelling them and reading their records.

Members (and admins) may run a project's code and see its runs; others are told the
project does not exist. Everything is checked before a run is queued: the branch, the
commit (on the branch), the file at that commit and its plan (:mod:`.plan`), the
template, the parameters. The work happens in the background
(:mod:`.execution`, run by the app's :class:`~.worker.RunWorker`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import Branch, Run, RunArtifact, RunNode
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.projects.access import require
from balsam.domain.runs import plan as plans
from balsam.domain.runs.schemas import RunCreate, RunList, RunNodePublic, RunPublic
from balsam.domain.workspaces.templates import WorkspaceTemplate
from balsam.errors import N_, Conflict, InvalidInput, NotFound

#: Ends a run may have.
ENDED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Queued:
    """A run checked and ready to queue."""

    branch: str
    path: str
    commit: str
    plan: plans.Plan
    parameters: dict[str, Any]
    template: WorkspaceTemplate
    rerun_of: str | None = None
    rerun_mode: str | None = None
    #: Inputs pinned in advance (an exact re-run): (path, version id, SHA-256, size).
    inputs: tuple[tuple[str, str, str, int], ...] = ()


def canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces, UTF-8 kept): what is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class RunService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # -- asking ----------------------------------------------------------------------

    def create(self, actor: Actor, project_id: str, data: RunCreate) -> RunPublic:
        """Check everything, then queue the run (202); never a half-made run."""
        git = self.ctx.providers.git
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", "run.create")
            if session.get(Branch, (project_id, data.branch_id)) is None:
                raise NotFound(
                    N_("No branch '%(branch)s' in project '%(project)s'."),
                    params={"branch": data.branch_id, "project": project_id},
                )
        template = self._template(data.template)
        parameters = self.checked_parameters(data.parameters)
        try:
            commit = git.resolve_commit(project_id, data.branch_id, data.commit)
        except NotFound as exc:
            raise InvalidInput(
                N_("No commit '%(commit)s' on branch '%(branch)s'."),
                params={"commit": data.commit or "HEAD", "branch": data.branch_id},
            ) from exc
        path = data.path.strip("/")
        try:
            content = git.read_file_at(project_id, commit, path)
        except NotFound as exc:
            raise InvalidInput(
                N_("No file '%(path)s' in commit %(commit)s."),
                params={"path": path, "commit": commit[:12]},
            ) from exc
        plan = plans.parse(path, content)
        self._check_files(project_id, commit, plan)
        queued = Queued(data.branch_id, path, commit, plan, parameters, template)
        return self.get(actor, project_id, self.queue(actor, project_id, queued))

    def queue(self, actor: Actor, project_id: str, queued: Queued) -> str:
        """Add the checked run (and its pinned inputs) in one transaction; its id."""
        run_id = secrets.token_hex(8)
        with self.ctx.sessions() as session, session.begin():
            session.add(
                Run(
                    id=run_id,
                    project_id=project_id,
                    branch=queued.branch,
                    path=queued.path,
                    kind=queued.plan.kind,
                    commit=queued.commit,
                    dirty=False,
                    parameters=queued.parameters,
                    template_id=queued.template.id,
                    environment=queued.template.environment.name,
                    state="queued",
                    rerun_of=queued.rerun_of,
                    rerun_mode=queued.rerun_mode,
                    created_by=actor.username,
                    request_id=actor.request_id[:64],
                    cancel_requested=False,
                )
            )
            for position, node in enumerate(queued.plan.order()):
                session.add(
                    RunNode(
                        run_id=run_id,
                        id=node.id,
                        key=node.key,
                        label=node.label,
                        kind=node.kind,
                        filename=node.filename,
                        position=position,
                        state="queued",
                    )
                )
            for path, version_id, sha256, size in queued.inputs:
                session.add(RunArtifact(project_id=project_id, run_id=run_id, node_id="",
                                        role="input", path=path, version_id=version_id,
                                        sha256=sha256, size=size))  # fmt: skip
        details: dict[str, object] = {"path": queued.path, "commit": queued.commit}
        if queued.rerun_of:
            details |= {"rerunOf": queued.rerun_of, "mode": queued.rerun_mode or ""}
        self._audit(actor, "run.create", project_id, run_id, details)
        return run_id

    def _template(self, template_id: str | None) -> WorkspaceTemplate:
        wanted = template_id or self.ctx.settings.runs.default_template
        template = self.ctx.templates.get(wanted)
        if template is None:
            raise InvalidInput(N_("No template '%(template)s'."), params={"template": wanted})
        return template

    def checked_parameters(self, parameters: dict[str, Any] | None) -> dict[str, Any]:
        value = parameters or {}
        try:  # NaN and infinities are not JSON; lone surrogates are not UTF-8
            size = len(json.dumps(value, allow_nan=False, ensure_ascii=False).encode())
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidInput(
                N_("The parameters must be JSON: no NaN, infinities or lone surrogates.")
            ) from exc
        if size > self.ctx.settings.runs.max_parameters_bytes:
            raise InvalidInput(N_("The parameters are too large."))
        bad = [name for name in value if not plans.is_parameter_name(name)]
        if bad:
            raise InvalidInput(
                N_("'%(name)s' is not a valid parameter name."), params={"name": bad[0][:100]}
            )
        return value

    def _check_files(self, project_id: str, commit: str, plan: plans.Plan) -> None:
        """Every node's file is in the commit (a pipeline may name one that is not)."""
        for node in plan.nodes:
            if node.filename == plan.path:
                continue
            try:
                self.ctx.providers.git.read_file_at(project_id, commit, node.filename)
            except NotFound as exc:
                raise InvalidInput(
                    N_("Node %(node)s names %(path)s, which is not in the commit."),
                    params={"node": node.label, "path": node.filename},
                ) from exc

    # -- following ---------------------------------------------------------------------

    def get(self, actor: Actor, project_id: str, run_id: str) -> RunPublic:
        with self.ctx.sessions() as session:
            return public(self._run(session, actor, project_id, run_id, "run.read"))

    def row(self, actor: Actor, project_id: str, run_id: str, action: str) -> Run:
        """The run's row (detached) if ``actor`` may do ``action`` on the project's runs."""
        with self.ctx.sessions() as session:
            run = self._run(session, actor, project_id, run_id, action)
            session.expunge(run)
            return run

    def list(self, actor: Actor, project_id: str, *, limit: int, offset: int) -> RunList:
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", "run.list")
            where = Run.project_id == project_id
            total = session.scalar(select(func.count()).select_from(Run).where(where)) or 0
            rows = session.scalars(
                select(Run)
                .where(where)
                .order_by(Run.created_at.desc(), Run.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return RunList(items=[public(r) for r in rows], total=total)

    def record(self, actor: Actor, project_id: str, run_id: str) -> str:
        """The run's record (canonical JSON); Conflict while it has not ended."""
        return self._written_at_end(actor, project_id, run_id, "record")

    def openlineage(self, actor: Actor, project_id: str, run_id: str) -> str:
        """The run's OpenLineage events (JSON lines); Conflict while it has not ended."""
        return self._written_at_end(actor, project_id, run_id, "openlineage")

    def _written_at_end(self, actor: Actor, project_id: str, run_id: str, what: str) -> str:
        with self.ctx.sessions() as session:
            run = self._run(session, actor, project_id, run_id, "run.read")
            text: str | None = getattr(run, what)
            if text is None:
                raise Conflict(N_("The run has not ended yet: its record is written when it ends."))
            return text

    def cancel(self, actor: Actor, project_id: str, run_id: str) -> RunPublic:
        """Ask the run to stop: a queued run is cancelled at once, a running one within
        seconds (its runner is killed; nothing of it is published). Idempotent."""
        with self.ctx.sessions() as session, session.begin():
            run = self._run(session, actor, project_id, run_id, "run.cancel")
            if run.state not in ENDED:
                session.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
        self._audit(actor, "run.cancel", project_id, run_id, {})
        return self.get(actor, project_id, run_id)

    def _run(
        self, session: Session, actor: Actor, project_id: str, run_id: str, action: str
    ) -> Run:
        require(self.ctx, session, actor, project_id, "member", action)
        run = session.get(Run, run_id)
        if run is None or run.project_id != project_id:
            raise NotFound(N_("No run '%(run)s'."), params={"run": run_id[:64]})
        return run

    def _audit(
        self, actor: Actor, action: str, project_id: str, run_id: str, details: dict[str, object]
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/run:{run_id}",
                outcome="success",
                project_id=project_id,
                request_id=actor.request_id,
                details={"runId": run_id, **details},
            )
        )


def public(run: Run) -> RunPublic:
    return RunPublic(
        id=run.id,
        project_id=run.project_id,
        branch=run.branch,
        state=run.state,  # type: ignore[arg-type]
        path=run.path,
        kind=run.kind,
        commit=run.commit,
        dirty=run.dirty,
        parameters=run.parameters,
        template=run.template_id,
        environment=run.environment,
        error=run.error,
        created_by=run.created_by,
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        rerun_of=run.rerun_of,
        rerun_mode=run.rerun_mode,
        record_sha256=run.record_sha256,
        nodes=[
            RunNodePublic(
                id=n.id,
                label=n.label,
                kind=n.kind,
                filename=n.filename,
                state=n.state,  # type: ignore[arg-type]
                error=n.error,
                started_at=n.started_at,
                ended_at=n.ended_at,
            )
            for n in run.nodes
        ],
    )
