"""Projects, branches and files (upstream BALSAM paths under /api/v1)."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.library.reuse import ReuseService
from balsam.domain.projects.branches import BranchService
from balsam.domain.projects.files import FileService
from balsam.domain.projects.naming import encode_file_id
from balsam.domain.projects.schemas import (
    BranchCreate,
    BranchCreated,
    BranchPublic,
    ProjectCreate,
    ProjectCreated,
    ProjectList,
    ProjectPublic,
    ProjectUpdate,
    RepoFile,
)
from balsam.domain.projects.service import ProjectService
from balsam.domain.projects.views import branch_public, project_created, project_public
from balsam.web.api.v1.common import MEMBER, Limit, Offset, problems
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/projects", tags=["Project"])
ProjectId = Annotated[str, Path(max_length=63, description="The identity of the project.")]
BranchId = Annotated[str, Path(max_length=100, description="The identity of the branch.")]
FileId = Annotated[str, Path(max_length=4096, description="The identity of the file.")]


@router.get("", response_model=ProjectList, operation_id="ListProjects", responses=MEMBER)
def list_projects(
    actor: CurrentActor,
    ctx: Ctx,
    limit: Limit = 100,
    offset: Offset = 0,
    all: Annotated[
        bool,
        Query(
            description="Admins: every project. Others always see "
            "only the projects they are members of."
        ),
    ] = True,
    q: Annotated[str, Query(max_length=200, description="Filter by id, name or description.")] = "",
) -> ProjectList:
    """Projects the caller may see, newest first."""
    rows, total = ProjectService(ctx).list(
        actor, include_all=all, query=q, limit=limit, offset=offset
    )
    return ProjectList(
        projects=[project_public(ctx, p, r) for p, r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "",
    status_code=201,
    response_model=ProjectCreated,
    operation_id="CreateProject",
    responses=problems(400, 401, 403, 409, 413, 422, 502),
)
def create_project(body: ProjectCreate, actor: CurrentActor, ctx: Ctx) -> ProjectCreated:
    """Create a project: repository, bucket, the caller as owner, and a first S3 key."""
    return project_created(ctx, ProjectService(ctx).create(actor, body))


@router.get(
    "/{projectId}", response_model=ProjectPublic, operation_id="GetProject", responses=MEMBER
)
def get_project(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> ProjectPublic:
    """A project the caller is a member of."""
    service = ProjectService(ctx)
    project = service.get(actor, projectId)
    return project_public(ctx, project, service.role(actor, projectId))


@router.patch(
    "/{projectId}", response_model=ProjectPublic, operation_id="UpdateProject", responses=MEMBER
)
def update_project(
    projectId: ProjectId, body: ProjectUpdate, actor: CurrentActor, ctx: Ctx
) -> ProjectPublic:
    """Change the description (owners)."""
    service = ProjectService(ctx)
    project = service.update(actor, projectId, body)
    return project_public(ctx, project, service.role(actor, projectId))


@router.delete(
    "/{projectId}",
    status_code=204,
    operation_id="DeleteProject",
    responses=problems(401, 403, 404, 422, 502),
)
def delete_project(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> Response:
    """Delete the project with its repository, data and keys (owners and admins)."""
    ProjectService(ctx).delete(actor, projectId)
    return Response(status_code=204)


@router.get(
    "/{projectId}/branches",
    response_model=list[BranchPublic],
    operation_id="ListBranches",
    responses=MEMBER,
)
def list_branches(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> list[BranchPublic]:
    """The project's branches."""
    return [branch_public(b) for b in BranchService(ctx).list(actor, projectId)]


@router.post(
    "/{projectId}/branches",
    status_code=201,
    response_model=BranchCreated,
    operation_id="CreateBranch",
    responses={**MEMBER, **problems(409, 502)},
)
def create_branch(
    projectId: ProjectId, body: BranchCreate, actor: CurrentActor, ctx: Ctx
) -> BranchCreated:
    """Create a branch from ``fromBranch`` (default branch if absent)."""
    branch = BranchService(ctx).create(actor, projectId, body)
    return BranchCreated(id=branch.id, project_id=projectId, name=branch.id)


@router.delete(
    "/{projectId}/branches/{branchId}",
    status_code=204,
    operation_id="DeleteBranch",
    responses={**MEMBER, **problems(409, 502)},
)
def delete_branch(
    projectId: ProjectId, branchId: BranchId, actor: CurrentActor, ctx: Ctx
) -> Response:
    """Delete a branch and its data prefix (never the default branch)."""
    BranchService(ctx).delete(actor, projectId, branchId)
    return Response(status_code=204)


@router.get(
    "/{projectId}/branches/{branchId}/files",
    response_model=list[RepoFile],
    operation_id="GetFiles",
    responses=MEMBER,
)
def list_files(
    projectId: ProjectId, branchId: BranchId, actor: CurrentActor, ctx: Ctx
) -> list[RepoFile]:
    """Every file and folder on the branch."""
    base = f"{ctx.settings.resolved_public_url}/api/v1/projects/{projectId}/branches/{branchId}"
    entries = FileService(ctx).list(actor, projectId, branchId)
    return [
        RepoFile(
            id=encode_file_id(e.path),
            path=e.path,
            name=e.name,
            type=e.type,
            content_url=f"{base}/files/{encode_file_id(e.path)}" if e.type == "File" else None,
        )
        for e in entries
    ]


class CopyResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    commit: str = Field(description="The commit on the project branch.")
    library_commit: str = Field(alias="libraryCommit", description="The library commit copied.")
    files: list[str] = Field(description="Paths written on the branch.")


@router.put(
    "/{projectId}/branches/{branchId}/files",
    response_model=CopyResult,
    operation_id="CopyFromKnowleadgeLibrary",
    responses={**MEMBER, **problems(409, 413)},
)
def copy_from_library(
    projectId: ProjectId,
    branchId: BranchId,
    actor: CurrentActor,
    ctx: Ctx,
    libraryId: Annotated[str, Query(max_length=63, description="id for the knowledge library")],
    fileId: Annotated[str, Query(max_length=4096, description="id for the file/directory")],
    overwrite: Annotated[bool, Query(description="Replace files that exist.")] = False,
) -> CopyResult:
    """Copy a library resource (folder or file) onto the branch as one commit (members)."""
    result = ReuseService(ctx).copy_to_branch(
        actor, projectId, branchId, libraryId, fileId, overwrite=overwrite
    )
    return CopyResult(
        commit=result.commit, library_commit=result.library_commit, files=result.paths
    )


@router.get(
    "/{projectId}/branches/{branchId}/files/{fileId}",
    operation_id="GetFile",
    responses={**MEMBER, 200: {"content": {"*/*": {}}, "description": "The file's raw content."}},
    response_class=Response,
)
def get_file(
    projectId: ProjectId, branchId: BranchId, fileId: FileId, actor: CurrentActor, ctx: Ctx
) -> Response:
    """The raw content of one file."""
    path, content = FileService(ctx).read(actor, projectId, branchId, fileId)
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media.startswith("text/") or media in {"application/json"}:
        media += "; charset=utf-8"
    return Response(
        content,
        media_type=media,
        headers={
            "Content-Disposition": "inline",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
