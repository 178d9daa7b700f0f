"""Recorded runs of a project's pipelines, notebooks and scripts: ask for one, follow
it, cancel it, read its record. The work runs in the background (the app's
:class:`~balsam.domain.runs.worker.RunWorker`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response

from balsam.domain.runs.execution import claim_next, run_run
from balsam.domain.runs.reruns import RerunService
from balsam.domain.runs.schemas import Comparison, RerunCreate, RunCreate, RunList, RunPublic
from balsam.domain.runs.service import RunService
from balsam.web.api.v1.common import MEMBER, Limit, Offset, problems, wake_worker
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["Runs"])

RunId = Annotated[str, Path(max_length=64, description="The run's id.")]


@router.post(
    "/projects/{projectId}/runs",
    status_code=202,
    response_model=RunPublic,
    operation_id="CreateRun",
    responses=problems(400, 401, 403, 404, 413, 422),
)
def create_run(
    projectId: ProjectId,
    body: RunCreate,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    background: BackgroundTasks,
) -> RunPublic:
    """Run a pipeline, notebook or script of the branch (its head, or ``commit``) in the
    background; follow it with GET .../runs/{runId}. Everything is checked first: a
    file that cannot run is a 422 naming why."""
    created = RunService(ctx).create(actor, projectId, body)
    wake_worker(request, background, "runs", claim_next, run_run, ctx)
    return created


@router.get(
    "/projects/{projectId}/runs",
    response_model=RunList,
    operation_id="ListRuns",
    responses=MEMBER,
)
def list_runs(
    projectId: ProjectId, actor: CurrentActor, ctx: Ctx, limit: Limit = 50, offset: Offset = 0
) -> RunList:
    """The project's runs, newest first."""
    return RunService(ctx).list(actor, projectId, limit=limit, offset=offset)


@router.get(
    "/projects/{projectId}/runs/{runId}",
    response_model=RunPublic,
    operation_id="GetRun",
    responses=MEMBER,
)
def get_run(projectId: ProjectId, runId: RunId, actor: CurrentActor, ctx: Ctx) -> RunPublic:
    """One run: its state and its nodes' states, times and errors."""
    return RunService(ctx).get(actor, projectId, runId)


@router.post(
    "/projects/{projectId}/runs/{runId}/cancel",
    response_model=RunPublic,
    operation_id="CancelRun",
    responses=MEMBER,
)
def cancel_run(projectId: ProjectId, runId: RunId, actor: CurrentActor, ctx: Ctx) -> RunPublic:
    """Stop the run (within seconds); nothing of it is published. Idempotent."""
    return RunService(ctx).cancel(actor, projectId, runId)


@router.post(
    "/projects/{projectId}/runs/{runId}/rerun",
    status_code=202,
    response_model=RunPublic,
    operation_id="RerunRun",
    responses=problems(400, 401, 403, 404, 409, 422),
)
def rerun(
    projectId: ProjectId,
    runId: RunId,
    body: RerunCreate,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    background: BackgroundTasks,
) -> RunPublic:
    """Run it again (``mode``: exact, latest-inputs, new-parameters, head): 202 with the
    new run (``rerunOf`` set), or 409 naming the precondition that no longer holds
    (``precondition``: commit, environment, input, branch, file)."""
    created = RerunService(ctx).rerun(actor, projectId, runId, body)
    wake_worker(request, background, "runs", claim_next, run_run, ctx)
    return created


@router.get(
    "/projects/{projectId}/runs/{runId}/comparison",
    response_model=Comparison,
    operation_id="CompareRerun",
    responses=problems(401, 404, 409),
)
def comparison(projectId: ProjectId, runId: RunId, actor: CurrentActor, ctx: Ctx) -> Comparison:
    """A re-run's declared outputs against the original's, by node and path:
    identical, differs or missing."""
    return RerunService(ctx).comparison(actor, projectId, runId)


@router.get(
    "/projects/{projectId}/runs/{runId}/record",
    operation_id="GetRunRecord",
    responses={200: {"content": {"application/json": {}}}, **problems(401, 404, 409)},
)
def get_record(projectId: ProjectId, runId: RunId, actor: CurrentActor, ctx: Ctx) -> Response:
    """The run's record (JSON, written once when the run ends; its SHA-256 is the run's
    ``recordSha256`` and is in the audit trail): who ran which code, in which
    environment, with which parameters, and every object each node wrote."""
    return Response(RunService(ctx).record(actor, projectId, runId), media_type="application/json")


@router.get(
    "/projects/{projectId}/runs/{runId}/openlineage",
    operation_id="GetRunOpenLineage",
    responses={200: {"content": {"application/x-ndjson": {}}}, **problems(401, 404, 409)},
)
def get_openlineage(projectId: ProjectId, runId: RunId, actor: CurrentActor, ctx: Ctx) -> Response:
    """The run's OpenLineage events (spec 2-0-2), one JSON document per line: START and
    COMPLETE, FAIL or ABORT for the run and each node that started."""
    lines = RunService(ctx).openlineage(actor, projectId, runId)
    return Response(lines, media_type="application/x-ndjson")
