"""Resumable uploads (Balsam's extension): start one with ``POST …/data/uploads``, send
its parts with ``PUT …/uploads/{id}/parts/{n}`` (in any order, again after a dropped
connection), ask which arrived with ``GET …/uploads/{id}``, then ``POST …/complete``.
Each part is read into memory (one buffer of its size, filled in place) and then
stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.data.schemas import (
    DataWritten,
    UploadList,
    UploadPart,
    UploadStart,
    UploadState,
)
from balsam.domain.data.uploads import UploadService
from balsam.domain.identity.service import Actor
from balsam.web.api.v1.common import MEMBER, problems
from balsam.web.api.v1.data import body_chunks, receiving
from balsam.web.api.v1.projects import ProjectId
from balsam.web.buffers import PartBuffers
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["Data"])
UploadId = Annotated[str, Path(max_length=32, description="The upload's id.")]
PartNumber = Annotated[int, Path(ge=1, le=10_000, description="The part's number, from 1.")]


@router.post(
    "/projects/{projectId}/data/uploads",
    status_code=201,
    response_model=UploadState,
    operation_id="StartUpload",
    responses=problems(400, 401, 403, 404, 422, 507),
)
def start_upload(
    projectId: ProjectId, body: UploadStart, actor: CurrentActor, ctx: Ctx
) -> UploadState:
    """Start a resumable upload of ``size`` bytes to ``path``: the answer says how the
    object is cut into parts (``partSize``, ``partsTotal``)."""
    return UploadService(ctx).begin(actor, projectId, body)


@router.get(
    "/projects/{projectId}/uploads",
    response_model=UploadList,
    operation_id="ListUploads",
    responses=MEMBER,
)
def list_uploads(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> UploadList:
    """The caller's unfinished uploads into the project (to resume after a reload)."""
    return UploadService(ctx).unfinished(actor, projectId)


@router.get(
    "/projects/{projectId}/uploads/{uploadId}",
    response_model=UploadState,
    operation_id="GetUpload",
    responses=MEMBER,
)
def get_upload(
    projectId: ProjectId, uploadId: UploadId, actor: CurrentActor, ctx: Ctx
) -> UploadState:
    """The upload with the parts received so far."""
    return UploadService(ctx).state(actor, projectId, uploadId)


@router.put(
    "/projects/{projectId}/uploads/{uploadId}/parts/{number}",
    response_model=UploadPart,
    operation_id="PutUploadPart",
    responses=problems(400, 401, 403, 404, 413, 422, 429, 502),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_part(
    projectId: ProjectId,
    uploadId: UploadId,
    number: PartNumber,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
) -> UploadPart | Response:
    """Part ``number``'s bytes (exactly as long as the upload says); sending a part
    again replaces it."""
    return await receiving(
        request,
        ctx,
        actor.username,
        lambda: _receive(ctx, projectId, uploadId, number, actor, request),
    )


async def _receive(
    ctx: AppContext,
    projectId: str,
    uploadId: str,
    number: int,
    actor: Actor,
    request: Request,
) -> UploadPart:
    service = UploadService(ctx)
    receipt = await run_in_threadpool(service.receive_part, actor, projectId, uploadId, number)
    # Filled in place: never more than one part held, and no copy of it.
    buffers = _part_buffers(request)
    body, filled = await buffers.take(receipt.length), 0
    try:
        with memoryview(body) as view:
            async for chunk in body_chunks(request, ctx):
                if filled + len(chunk) > receipt.length:
                    filled = -1  # too long: stop reading
                    break
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
    except BaseException:
        buffers.give(body)
        await run_in_threadpool(receipt.give_up)
        raise
    try:
        return await run_in_threadpool(receipt.store, body if filled == receipt.length else b"")
    finally:
        buffers.give(body)


def _part_buffers(request: Request) -> PartBuffers:
    buffers = getattr(request.app.state, "part_buffers", None)
    if buffers is None:
        buffers = request.app.state.part_buffers = PartBuffers()
    assert isinstance(buffers, PartBuffers)
    return buffers


@router.post(
    "/projects/{projectId}/uploads/{uploadId}/complete",
    status_code=201,
    response_model=DataWritten,
    operation_id="CompleteUpload",
    responses=problems(400, 401, 403, 404, 409, 422, 502, 507),
)
def complete_upload(
    projectId: ProjectId, uploadId: UploadId, actor: CurrentActor, ctx: Ctx
) -> DataWritten:
    """Make the object visible (409 naming the parts still missing)."""
    return UploadService(ctx).complete(actor, projectId, uploadId)


@router.delete(
    "/projects/{projectId}/uploads/{uploadId}",
    status_code=204,
    operation_id="AbortUpload",
    responses=MEMBER,
)
def abort_upload(
    projectId: ProjectId, uploadId: UploadId, actor: CurrentActor, ctx: Ctx
) -> Response:
    """Drop the upload and its parts."""
    UploadService(ctx).abort(actor, projectId, uploadId)
    return Response(status_code=204)
