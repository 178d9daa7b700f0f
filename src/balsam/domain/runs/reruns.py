"""Re-running a run, and comparing a re-run's outputs with the original's.

Modes:

* ``exact``: the same commit, the same environment (the template's environment must
  still be the one the run used: same packages, same lock), the same parameters, and the
  same input versions (pinned: the re-run reads copies of exactly those versions);
* ``latest-inputs``: the same, but the inputs the parameters name as they are now;
* ``new-parameters``: the same commit with other parameters;
* ``head``: the branch's head now, the same parameters.

Every precondition is checked before anything is queued; a missing one is a 409 that
names it (``precondition``: ``commit``, ``environment``, ``input``, ``branch``,
``file``). The comparison matches each declared output of the two runs by node and path:
``identical`` (same SHA-256), ``differs``, or ``missing`` (in one of them only).
"""

from __future__ import annotations

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Project, Run, RunArtifact
from balsam.domain.identity.service import Actor
from balsam.domain.runs import plan as plans
from balsam.domain.runs.schemas import (
    Comparison,
    OutputComparison,
    RerunCreate,
    RunPublic,
    Verdict,
)
from balsam.domain.runs.service import ENDED, Queued, RunService
from balsam.errors import N_, Conflict, InvalidInput, NotFound

#: Where a node's declared outputs are kept with its run: ``runs/<run>/<key>/outputs/``.
OUTPUTS = "/outputs/"


def _missing(what: str, message: str, **params: str) -> Conflict:
    return Conflict(message, params=params, details={"precondition": what})


class RerunService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.runs = RunService(ctx)

    def rerun(self, actor: Actor, project_id: str, run_id: str, data: RerunCreate) -> RunPublic:
        original = self.runs.row(actor, project_id, run_id, "run.rerun")
        if original.state not in ENDED:
            raise Conflict(N_("The run has not ended yet."))
        if data.mode == "new-parameters" and data.parameters is None:
            raise InvalidInput(N_("Give the parameters of the new run."))
        template = self.ctx.templates.get(original.template_id)
        if template is None:
            raise _missing("environment", N_("The template %(template)s is no longer offered."),
                           template=original.template_id)  # fmt: skip
        commit = self._commit(project_id, original, data.mode)
        plan = self._plan(project_id, original.path, commit)
        inputs: tuple[tuple[str, str, str, int], ...] = ()
        if data.mode == "exact":
            if template.environment.name != original.environment:
                raise _missing(
                    "environment",
                    N_("The run's environment %(environment)s is no longer the template's "
                       "(it is %(now)s now): it cannot be rebuilt exactly."),
                    environment=original.environment, now=template.environment.name,
                )  # fmt: skip
            inputs = self._pinned_inputs(project_id, original.id)
        parameters = original.parameters
        if data.mode == "new-parameters":
            parameters = self.runs.checked_parameters(data.parameters)
        queued = Queued(original.branch, original.path, commit, plan, parameters, template,
                        rerun_of=original.id, rerun_mode=data.mode, inputs=inputs)  # fmt: skip
        return self.runs.get(actor, project_id, self.runs.queue(actor, project_id, queued))

    def _commit(self, project_id: str, original: Run, mode: str) -> str:
        git = self.ctx.providers.git
        if mode == "head":
            try:
                return git.resolve_commit(project_id, original.branch)
            except NotFound as exc:
                raise _missing("branch", N_("The branch %(branch)s is no longer there."),
                               branch=original.branch) from exc  # fmt: skip
        try:
            git.read_file_at(project_id, original.commit, original.path)
        except NotFound as exc:
            raise _missing("commit", N_("The commit %(commit)s is no longer in the repository."),
                           commit=original.commit[:12]) from exc  # fmt: skip
        return original.commit

    def _plan(self, project_id: str, path: str, commit: str) -> plans.Plan:
        try:
            content = self.ctx.providers.git.read_file_at(project_id, commit, path)
        except NotFound as exc:
            raise _missing("file", N_("%(path)s is not in commit %(commit)s."),
                           path=path, commit=commit[:12]) from exc  # fmt: skip
        return plans.parse(path, content)

    def _pinned_inputs(self, project_id: str, run_id: str) -> tuple[tuple[str, str, str, int], ...]:
        """The original's declared inputs, each version checked to be still there."""
        with self.ctx.sessions() as session:
            bucket = session.scalar(select(Project.bucket).where(Project.id == project_id))
            rows = session.scalars(
                select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.role == "input")
            ).all()
        objects = self.ctx.providers.storage.objects
        for row in rows:
            if bucket is None or objects.head(bucket, row.path, row.version_id or None) is None:
                raise _missing(
                    "input", N_("The input %(path)s (version %(version)s) is no longer there."),
                    path=row.path, version=row.version_id,
                )  # fmt: skip
        return tuple((r.path, r.version_id, r.sha256, r.size) for r in rows)

    # -- comparing ---------------------------------------------------------------------

    def comparison(self, actor: Actor, project_id: str, run_id: str) -> Comparison:
        rerun = self.runs.row(actor, project_id, run_id, "run.read")
        if rerun.rerun_of is None:
            raise Conflict(N_("This run is not a re-run."))
        if rerun.state not in ENDED:
            raise Conflict(N_("The run has not ended yet."))
        theirs, mine = self._outputs(rerun.rerun_of), self._outputs(rerun.id)
        outputs = []
        for node, path in sorted(theirs.keys() | mine.keys()):
            before, after = theirs.get((node, path)), mine.get((node, path))
            verdict: Verdict = (
                "missing" if before is None or after is None
                else "identical" if before == after else "differs"
            )  # fmt: skip
            outputs.append(OutputComparison(node=node, path=path, original=before, rerun=after,
                                            verdict=verdict))  # fmt: skip
        return Comparison(rerun_of=rerun.rerun_of, mode=rerun.rerun_mode, outputs=outputs)

    def _outputs(self, run_id: str) -> dict[tuple[str, str], str]:
        """(node, declared output path) → SHA-256 of the copy kept with the run."""
        with self.ctx.sessions() as session:
            rows = session.execute(
                select(RunArtifact.node_id, RunArtifact.path, RunArtifact.sha256).where(
                    RunArtifact.run_id == run_id, RunArtifact.role == "output"
                )
            ).all()
        found = {}
        for node, path, sha256 in rows:
            if OUTPUTS in path:
                found[(node, path.split(OUTPUTS, 1)[1])] = sha256
        return found
