"""Knowledge libraries: upstream's ``/knowledge-libraries`` paths plus the registry,
sync and structured views.

Reading needs a login (anyone, with ``library_public``); changing needs an
admin. Syncs never run on the request path: they are queued on the app's
background worker (or, in an app started without its lifespan, run after
the response is sent).
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, Response
from fastapi.responses import StreamingResponse

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.library import catalog
from balsam.domain.library.catalog import LibraryLinks
from balsam.domain.library.render import render_file
from balsam.domain.library.schemas import (
    Article,
    ExampleCatalog,
    KnowledgeLibraryPublic,
    LibraryCreate,
    LibraryUpdate,
    Rendered,
    ResourceCatalog,
    SyncAccepted,
    Template,
)
from balsam.domain.library.service import LibraryService
from balsam.domain.library.views import library_public
from balsam.domain.projects.naming import decode_file_id, encode_file_id
from balsam.domain.projects.schemas import RepoFile
from balsam.errors import NotFound, Unauthenticated
from balsam.web.api.v1.common import problems
from balsam.web.deps import Ctx, CurrentActor, current_actor, queue_sync

log = logging.getLogger(__name__)
router = APIRouter(prefix="/knowledge-libraries", tags=["KnowledgeLibrary"])
LibraryId = Annotated[str, Path(max_length=63, description="id for the knowledge library")]
FileId = Annotated[str, Path(max_length=4096, description="id for the file")]
READ = problems(401, 404, 422)
ADMIN = problems(401, 403, 404, 422)
STREAM_ABOVE = 1024 * 1024
#: Types a browser would run: served as text/plain (SVG: as a download).
_ACTIVE = {
    "text/html",
    "application/xhtml+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
    "text/css",
}
_TYPES = {
    ".pipeline": "application/json",
    ".ipynb": "application/json",
    ".r": "text/plain",
    ".md": "text/markdown",
    ".url": "text/plain",
    ".csv": "text/csv",
}


def library_reader(request: Request, ctx: Ctx) -> Actor | None:
    """The caller, or None for an anonymous caller when ``library_public`` is on."""
    try:
        return current_actor(request, ctx)
    except Unauthenticated:
        if ctx.settings.library_public:
            return None
        raise


Reader = Annotated[Actor | None, Depends(library_reader)]


def links(ctx: AppContext, library_id: str) -> LibraryLinks:
    return LibraryLinks(
        f"{ctx.settings.resolved_public_url}/api/v1/knowledge-libraries/{library_id}"
    )


# -- registry -------------------------------------------------------------------------


@router.get(
    "",
    response_model=list[KnowledgeLibraryPublic],
    operation_id="ListKnowledgeLibaries",
    responses=problems(401),
)
def list_libraries(reader: Reader, ctx: Ctx) -> list[KnowledgeLibraryPublic]:
    """List available knowledge libraries."""
    return [library_public(lib) for lib in LibraryService(ctx).list()]


@router.post(
    "",
    status_code=201,
    response_model=KnowledgeLibraryPublic,
    operation_id="CreateKnowledgeLibrary",
    responses=problems(400, 401, 403, 409, 422),
)
def create_library(
    body: LibraryCreate,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    background: BackgroundTasks,
) -> KnowledgeLibraryPublic:
    """Register a library (admins); its first sync starts in the background."""
    library = LibraryService(ctx).create(actor, body)
    queue_sync(request, background, ctx, library.id)
    return library_public(library)


@router.get(
    "/{libraryId}",
    response_model=KnowledgeLibraryPublic,
    operation_id="GetKnowledgeLibrary",
    responses=READ,
)
def get_library(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> KnowledgeLibraryPublic:
    """One library with its sync state."""
    return library_public(LibraryService(ctx).get(libraryId))


@router.patch(
    "/{libraryId}",
    response_model=KnowledgeLibraryPublic,
    operation_id="UpdateKnowledgeLibrary",
    responses={**ADMIN, **problems(409)},
)
def update_library(
    libraryId: LibraryId,
    body: LibraryUpdate,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    background: BackgroundTasks,
) -> KnowledgeLibraryPublic:
    """Change a library (admins); a new URL or branch is synced in the background."""
    library, moved = LibraryService(ctx).update(actor, libraryId, body)
    if moved:
        queue_sync(request, background, ctx, library.id)
    return library_public(library)


@router.delete(
    "/{libraryId}", status_code=204, operation_id="DeleteKnowledgeLibrary", responses=ADMIN
)
def delete_library(libraryId: LibraryId, actor: CurrentActor, ctx: Ctx) -> Response:
    """Remove a library, its mirror and its search index (admins)."""
    LibraryService(ctx).delete(actor, libraryId)
    return Response(status_code=204)


@router.post(
    "/{libraryId}/sync",
    status_code=202,
    response_model=SyncAccepted,
    operation_id="SyncKnowledgeLibrary",
    responses=ADMIN,
)
def sync_library(
    libraryId: LibraryId,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    background: BackgroundTasks,
) -> SyncAccepted:
    """Queue a sync (admins); poll the library for its outcome."""
    library = LibraryService(ctx).request_sync(actor, libraryId)
    queue_sync(request, background, ctx, library.id)
    return SyncAccepted(id=library.id, sync_status=library.sync_status)  # type: ignore[arg-type]


# -- content ----------------------------------------------------------------------------


@router.get(
    "/{libraryId}/files",
    response_model=list[RepoFile],
    operation_id="ListKnowledgeLibraryFiles",
    responses=READ,
)
def list_files(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> list[RepoFile]:
    """Every file and folder of the synced commit."""
    tree, urls = LibraryService(ctx).tree(libraryId), links(ctx, libraryId)
    return [
        RepoFile(
            id=encode_file_id(e.path),
            path=e.path,
            name=e.name,
            type=e.type,
            content_url=urls.content(e.path) if e.type == "File" else None,
        )
        for e in tree.entries()
    ]


@router.get(
    "/{libraryId}/files/{fileId}",
    operation_id="GetKnowledgeLibraryFileContent",
    response_class=Response,
    responses={**READ, 200: {"content": {"*/*": {}}, "description": "Raw content."}},
)
def get_file(libraryId: LibraryId, fileId: FileId, reader: Reader, ctx: Ctx) -> Response:
    """The raw content of one file; never run by the browser."""
    tree = LibraryService(ctx).tree(libraryId)
    path = decode_file_id(fileId)
    size = tree.size(path)
    media, headers = file_headers(path)
    if size > STREAM_ABOVE:
        return StreamingResponse(
            tree.stream(path), media_type=media, headers={**headers, "Content-Length": str(size)}
        )
    return Response(tree.read(path), media_type=media, headers=headers)


def file_headers(path: str) -> tuple[str, dict[str, str]]:
    """Content type and headers that keep a library file inert in a browser."""
    name = posixpath.basename(path)
    suffix = posixpath.splitext(name)[1].casefold()
    media = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    disposition = "inline"
    if media in _ACTIVE:
        media = "text/plain"
    elif media == "image/svg+xml" or media == "application/octet-stream":
        disposition = "attachment"
    if media.startswith("text/") or media == "application/json":
        media += "; charset=utf-8"
    return media, {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
    }


@router.get(
    "/{libraryId}/render/{fileId}",
    response_model=Rendered,
    operation_id="RenderKnowledgeLibraryFile",
    responses=READ,
)
def render(libraryId: LibraryId, fileId: FileId, reader: Reader, ctx: Ctx) -> Rendered:
    """A file as sanitised HTML (markdown, notebooks, links, highlighted code)."""
    tree = LibraryService(ctx).tree(libraryId)
    return render_file(
        tree,
        decode_file_id(fileId),
        links(ctx, libraryId),
        max_bytes=ctx.settings.library_render_max_bytes,
    )


@router.get(
    "/{libraryId}/readme",
    response_model=Rendered,
    operation_id="GetKnowledgeLibraryReadme",
    responses=READ,
)
def readme(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> Rendered:
    """The library's README, rendered."""
    tree = LibraryService(ctx).tree(libraryId)
    path = catalog.find_readme(tree, "")
    if path is None:
        raise NotFound("The library has no README.")
    return render_file(
        tree, path, links(ctx, libraryId), max_bytes=ctx.settings.library_render_max_bytes
    )


@router.get(
    "/{libraryId}/articles",
    response_model=list[Article],
    operation_id="ListKnowledgeLibraryArticles",
    responses=READ,
)
def articles(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> list[Article]:
    """Articles (``Articles/**.md``) with their title and category."""
    return catalog.articles(LibraryService(ctx).tree(libraryId), links(ctx, libraryId))


@router.get(
    "/{libraryId}/resources",
    response_model=ResourceCatalog,
    operation_id="ListKnowledgeLibraryResources",
    responses=READ,
)
def resources(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> ResourceCatalog:
    """Resources (``Resources/<Name>/``) and library-wide files."""
    return catalog.resources(LibraryService(ctx).tree(libraryId), links(ctx, libraryId))


@router.get(
    "/{libraryId}/templates",
    response_model=list[Template],
    operation_id="ListKnowledgeLibraryTemplates",
    responses=READ,
)
def templates(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> list[Template]:
    """Project templates (``Templates/*.json``); unreadable ones carry an error."""
    return catalog.templates(LibraryService(ctx).tree(libraryId), links(ctx, libraryId))


@router.get(
    "/{libraryId}/examples",
    response_model=ExampleCatalog,
    operation_id="ListKnowledgeLibraryExamples",
    responses=READ,
)
def examples(libraryId: LibraryId, reader: Reader, ctx: Ctx) -> ExampleCatalog:
    """Example projects (``ExampleProjects/<Name>/``)."""
    return catalog.examples(LibraryService(ctx).tree(libraryId), links(ctx, libraryId))
