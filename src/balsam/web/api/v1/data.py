"""A project's data (Balsam's extension): browse, download, upload, delete, versions,
restore and usage of the objects in its bucket. Bodies stream both ways: an upload
leaves in parts as it arrives, :data:`SENDING` side by side (memory per upload: that
many parts and one more), a download is passed on in ranges fetched side by side."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from balsam.context import AppContext
from balsam.domain.data.schemas import (
    DataListing,
    DataPreview,
    DataUsage,
    DataVersions,
    DataWritten,
    DeletedListing,
    Moved,
    MoveRequest,
    Provenance,
    RestoreRequest,
)
from balsam.domain.data.service import DataService
from balsam.domain.identity.service import Actor
from balsam.domain.runs.lineage import LineageService
from balsam.domain.runs.schemas import Lineage
from balsam.errors import N_, RateLimited, RequestTimeout
from balsam.providers.storage.objects import ObjectInfo
from balsam.web.api.v1.common import MEMBER, problems
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import Ctx, CurrentActor
from balsam.web.slots import app_slots

router = APIRouter(tags=["Data"])
T = TypeVar("T")
#: Parts of one upload sent to storage side by side.
SENDING = 2


async def body_chunks(request: Request, ctx: AppContext) -> AsyncIterator[bytes]:
    """The request's body as it arrives; RequestTimeout (408) when it pauses longer than
    storage.body_idle_seconds (a body that stops would hold its slot and buffers), and
    ClientGone when the client went away (nothing to answer, nothing to log)."""
    idle = ctx.settings.storage.body_idle_seconds
    chunks = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):  # not wait_for: no task per chunk
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(N_("The upload stopped arriving.")) from None
        except ClientDisconnect:
            raise ClientGone from None
        yield chunk


class ClientGone(Exception):
    """The client went away in the middle of its body (answered quietly)."""


async def receiving(
    request: Request, ctx: AppContext, user: str, work: Callable[[], Awaitable[T]]
) -> T | Response:
    """``work()``, which reads the request's body, in a slot for one upload body
    (storage.max_uploads, max_uploads_per_user: each holds parts in memory while it
    runs; 429 with Retry-After when none is free). A client that went away is answered
    quietly."""
    storage = ctx.settings.storage
    slots = app_slots(request, "upload_slots", storage.max_uploads, storage.max_uploads_per_user)
    if not slots.take(user):
        raise RateLimited(
            N_("Too many uploads at once; try again in a moment."),
            details={"retryAfterSeconds": 1},
        )
    try:
        return await work()
    except ClientGone:
        return Response(status_code=400)  # nobody is listening for an answer
    finally:
        slots.give(user)


#: Uploads stream to storage in parts (and resumable uploads' parts are bounded by
#: their own size): the API's body limit does not apply to these PUTs.
STREAMED_UPLOADS = re.compile(r"^/api/v1/projects/[^/]+/(data/.+|uploads/[^/]+/parts/\d+)$")


@router.get(
    "/projects/{projectId}/data",
    response_model=DataListing,
    operation_id="ListData",
    responses=MEMBER,
)
def list_data(
    projectId: ProjectId,
    actor: CurrentActor,
    ctx: Ctx,
    prefix: Annotated[str, Query(max_length=1024)] = "",
    after: Annotated[str, Query(max_length=1024)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> DataListing:
    """Objects and folders directly under ``prefix`` ('' or a folder such as 'main/')."""
    return DataService(ctx).list(actor, projectId, prefix, after=after, limit=limit)


@router.get(
    "/projects/{projectId}/deleted",
    response_model=DeletedListing,
    operation_id="ListDeletedData",
    responses=MEMBER,
)
def list_deleted(
    projectId: ProjectId,
    actor: CurrentActor,
    ctx: Ctx,
    prefix: Annotated[str, Query(max_length=1024)] = "",
) -> DeletedListing:
    """Deleted objects under ``prefix`` (a folder, at any depth) that can be restored,
    each with its newest version (``POST …/data/{path}/restore``)."""
    return DataService(ctx).deleted(actor, projectId, prefix)


@router.get(
    "/projects/{projectId}/usage",
    response_model=DataUsage,
    operation_id="GetDataUsage",
    responses=MEMBER,
)
def get_usage(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> DataUsage:
    """Bytes and objects per top-level folder (each branch's, ``tmp/``) and in all."""
    return DataService(ctx).usage(actor, projectId)


@router.get(
    "/projects/{projectId}/data/{path:path}",
    operation_id="GetData",
    responses={
        200: {
            "description": "The object's content; with versions=true its versions "
            "(DataVersions), with provenance=true where it came from (Provenance), with "
            "preview=true its schema and first rows (DataPreview), with lineage=true the "
            "run that produced it, from which inputs, and the runs that used it (Lineage).",
            "content": {"application/octet-stream": {}},
        },
        **problems(400, 401, 403, 404, 422),
    },
)
def get_data(
    projectId: ProjectId,
    path: str,
    actor: CurrentActor,
    ctx: Ctx,
    versions: bool = False,
    provenance: bool = False,
    preview: bool = False,
    lineage: bool = False,
    version_id: Annotated[str | None, Query(alias="versionId", max_length=128)] = None,
) -> Response:
    """The object at ``path`` (a version of it with ``versionId``), always as a download
    (never rendered by the browser on Balsam's origin)."""
    service = DataService(ctx)
    if versions:
        return _json(service.versions(actor, projectId, path))
    if provenance:
        return _json(service.provenance(actor, projectId, path, version_id))
    if preview:
        return _json(service.preview(actor, projectId, path, version_id))
    if lineage:
        return _json(LineageService(ctx).lineage(actor, projectId, path, version_id))
    info, chunks = service.read(actor, projectId, path, version_id=version_id)
    return _download(info, chunks)


def _json(model: DataVersions | Provenance | DataPreview | Lineage) -> Response:
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


def _download(info: ObjectInfo, chunks: Iterator[bytes]) -> Response:
    name = info.key.rsplit("/", 1)[-1]
    headers = {
        "Content-Length": str(info.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        # Content users uploaded must not run as a page of Balsam's origin.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if info.version_id:
        headers["X-Balsam-Version-Id"] = info.version_id
    return StreamingResponse(
        chunks,
        media_type=info.content_type or "application/octet-stream",
        headers=headers,
    )


@router.put(
    "/projects/{projectId}/data/{path:path}",
    status_code=201,
    response_model=DataWritten,
    operation_id="PutData",
    responses=problems(400, 401, 403, 404, 422, 429, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_data(
    projectId: ProjectId,
    path: str,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    expires_in_days: Annotated[
        int | None,
        Query(
            alias="expiresInDays",
            ge=1,
            le=3650,
            description="Only under tmp/: days until it expires (default and most: "
            "the installation's storage.tmp_days and tmp_max_days).",
        ),
    ] = None,
) -> DataWritten | Response:
    """Write the request body to ``path``; the content it replaces stays as a version.
    Nothing is visible until the whole body has arrived."""
    return await receiving(
        request,
        ctx,
        actor.username,
        lambda: _put(projectId, path, actor, ctx, request, expires_in_days),
    )


async def _put(
    projectId: str,
    path: str,
    actor: Actor,
    ctx: AppContext,
    request: Request,
    expires_in_days: int | None,
) -> DataWritten:
    service = DataService(ctx)
    write = await run_in_threadpool(
        functools.partial(
            service.begin_write,
            actor,
            projectId,
            path,
            request.headers.get("content-type"),
            expires_in_days=expires_in_days,
            size=_declared_length(request),
        )
    )
    # Parts go to storage while the next arrives: at most SENDING + 1 parts held.
    sending: collections.deque[asyncio.Future[None]] = collections.deque()
    try:
        async for chunk in body_chunks(request, ctx):
            if write.add(chunk):
                number, part = write.take()
                if len(sending) >= SENDING:
                    await sending.popleft()
                sending.append(asyncio.ensure_future(run_in_threadpool(write.send, number, part)))
        while sending:
            await sending.popleft()
        return await run_in_threadpool(write.finish)
    except BaseException:
        for future in sending:
            with contextlib.suppress(BaseException):
                await future
        await run_in_threadpool(write.abort)
        raise


def _declared_length(request: Request) -> int | None:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


@router.delete(
    "/projects/{projectId}/data/{path:path}",
    status_code=204,
    operation_id="DeleteData",
    responses=MEMBER,
)
def delete_data(projectId: ProjectId, path: str, actor: CurrentActor, ctx: Ctx) -> Response:
    """Delete an object, or a folder (a path ending in '/') with all under it. Deleted
    data stays restorable (``?versions=true``, ``/restore``) for the retention period."""
    DataService(ctx).delete(actor, projectId, path)
    return Response(status_code=204)


@router.post(
    "/projects/{projectId}/data/{path:path}/restore",
    status_code=201,
    response_model=DataWritten,
    operation_id="RestoreData",
    responses=MEMBER,
)
def restore_data(
    projectId: ProjectId,
    path: str,
    body: Annotated[RestoreRequest, Body()],
    actor: CurrentActor,
    ctx: Ctx,
) -> DataWritten:
    """Make an earlier version (``versionId`` from ``?versions=true``) current again."""
    return DataService(ctx).restore(actor, projectId, path, body.version_id)


@router.post(
    "/projects/{projectId}/data/{path:path}/move",
    response_model=Moved,
    operation_id="MoveData",
    responses={**MEMBER, **problems(409)},
)
def move_data(
    projectId: ProjectId,
    path: str,
    body: Annotated[MoveRequest, Body()],
    actor: CurrentActor,
    ctx: Ctx,
) -> Moved:
    """Move (rename) an object, or a folder (ending in '/') with all under it, within the
    project. Nothing is overwritten (409 when something is at ``to``); what moved stays
    restorable where it was, and keeps its provenance."""
    count = DataService(ctx).move(actor, projectId, path, body.to)
    return Moved(path=path, to=body.to, objects=count)
