"""Imports of files from http(s) URLs into a project's bucket (Balsam's extension):
ask for one, then follow it until it has ``succeeded`` or ``failed``. The work runs in
the background (the app's :class:`~balsam.domain.data.import_worker.ImportWorker`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request

from balsam.domain.data.import_runs import claim_next, run_import
from balsam.domain.data.import_schemas import ImportCreate, ImportList, ImportPublic
from balsam.domain.data.imports import ImportService
from balsam.web.api.v1.common import MEMBER, wake_worker
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["Data"])

ImportId = Annotated[str, Path(max_length=64, description="The import's id.")]


@router.post(
    "/projects/{projectId}/imports",
    status_code=202,
    response_model=ImportPublic,
    operation_id="CreateImport",
    responses=MEMBER,
)
def create_import(
    projectId: ProjectId,
    body: ImportCreate,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    background: BackgroundTasks,
) -> ImportPublic:
    """Import the file at ``url`` to ``target`` in the project's bucket, in the
    background; follow it with GET .../imports/{importId}. The URL must be http(s),
    without credentials, on public addresses (unless the installation allows its host);
    so must every redirect."""
    created = ImportService(ctx).create(actor, projectId, body)
    wake_worker(request, background, "imports", claim_next, run_import, ctx)
    return created


@router.get(
    "/projects/{projectId}/imports",
    response_model=ImportList,
    operation_id="ListImports",
    responses=MEMBER,
)
def list_imports(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> ImportList:
    """The project's latest imports (at most 100), newest first."""
    return ImportService(ctx).list(actor, projectId)


@router.get(
    "/projects/{projectId}/imports/{importId}",
    response_model=ImportPublic,
    operation_id="GetImport",
    responses=MEMBER,
)
def get_import(
    projectId: ProjectId, importId: ImportId, actor: CurrentActor, ctx: Ctx
) -> ImportPublic:
    """One import: its state, and once it has ended its size and SHA-256 or its error."""
    return ImportService(ctx).get(actor, projectId, importId)
