"""The *Data* tab's own pages: a file (its preview, facts and versions, each
restorable), deleting a file or a folder (a confirmation page, then a form post),
the project's usage, the way into a new folder, and the tab's forms that discard an
unfinished upload and queue an import from a web address.

The tab itself is a tab of the project page (:mod:`balsam.web.pages.project`, the
folder from :mod:`balsam.web.pages.data_folder`); uploads go from the browser
straight to the data API (``uploadFile`` in ``balsam.js``). Every address names the
branch whose tab it belongs to; a path must lie in that branch's area or in
``tmp/`` (NotFound otherwise). What a user may see and do is the data service's
decision: non-members are told the project does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.data.import_schemas import ImportCreate
from balsam.domain.data.imports import ImportService
from balsam.domain.data.schemas import (
    DataPreview,
    DataUsage,
    DataVersion,
    DeletedListing,
    Provenance,
)
from balsam.domain.data.service import DataService, check_path
from balsam.domain.data.uploads import UploadService
from balsam.domain.identity.service import Actor
from balsam.domain.projects.schemas import ProjectPublic
from balsam.errors import N_, InvalidInput, NotFound
from balsam.web.deps import get_ctx
from balsam.web.pages.data_folder import (
    api_data_url,
    area_of,
    crumbs,
    data_page_url,
    parent_folder,
)
from balsam.web.pages.forms import done_message, done_redirect, posted_form, require_session
from balsam.web.pages.project import project_on_branch, tab_url
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

MAX_PATH = 1024
Branch = Annotated[str, Query(max_length=200)]
DataPath = Annotated[str, Query(max_length=MAX_PATH)]
#: What a file's page says after its form worked (``?done=``).
FILE_DONE = {
    "restored": N_("The version is restored: it is the current one now."),
    "moved": N_("Moved here. Where it was, it can be restored from its versions."),
}


@dataclass
class DataFile:
    """A file's page: its versions (newest first), and for a current version that is
    not a deletion, its facts and preview."""

    path: str
    versions: list[DataVersion]
    facts: Provenance | None = None
    preview: DataPreview | None = None


def _where(
    ctx: AppContext, actor: Actor, project_id: str, branch: str, path: str
) -> tuple[ProjectPublic, str]:
    """The project and the branch, with ``path`` checked to be usable and in the
    branch's area or tmp/."""
    project, chosen = project_on_branch(ctx, actor, project_id, branch)
    check_path(path, folder=path.endswith("/"))
    area_of(chosen, path)
    return project, chosen


def _load_file(ctx: AppContext, actor: Actor, project_id: str, path: str) -> DataFile:
    service = DataService(ctx)
    found = DataFile(path, service.versions(actor, project_id, path).versions)
    current = next((v for v in found.versions if v.current), None)
    if current is not None and not current.deleted:
        found.facts = service.provenance(actor, project_id, path)
        found.preview = service.preview(actor, project_id, path)
    return found


@router.get("/projects/{project_id}/data/file")
async def file_page(
    request: Request, project_id: str, path: DataPath, branch: Branch = ""
) -> HTMLResponse:
    """A file: its preview (a table, a text, or download only), facts and versions."""
    session = await require_session(request)
    ctx = get_ctx(request)
    project, chosen = await run_in_threadpool(_where, ctx, session.actor, project_id, branch, path)
    found = await run_in_threadpool(_load_file, ctx, session.actor, project_id, path)
    return render(
        request,
        "project/data_file.html",
        nav="projects",
        project=project,
        branch=chosen,
        file=found,
        name=path.rsplit("/", 1)[-1],
        crumbs=crumbs(area_of(chosen, path), parent_folder(path) + "/"),
        tab_url=tab_url,
        api_data_url=api_data_url,
        data_page_url=data_page_url,
        done=done_message(request, FILE_DONE),
    )


@router.get("/projects/{project_id}/data/delete")
async def delete_page(
    request: Request, project_id: str, path: DataPath, branch: Branch = ""
) -> HTMLResponse:
    """Confirm deleting a file or a folder (a path ending in '/')."""
    session = await require_session(request)
    ctx = get_ctx(request)
    project, chosen = await run_in_threadpool(_where, ctx, session.actor, project_id, branch, path)
    await run_in_threadpool(_require_something_at, ctx, session.actor, project_id, path)
    return render(
        request,
        "project/data_delete.html",
        nav="projects",
        project=project,
        branch=chosen,
        path=path,
        name=path.rstrip("/").rsplit("/", 1)[-1],
        folder_url=tab_url(project_id, chosen, "data", parent_folder(path)),
        retention_days=ctx.settings.storage.retention_days,
    )


def _require_something_at(ctx: AppContext, actor: Actor, project_id: str, path: str) -> None:
    service = DataService(ctx)
    if not path.endswith("/"):
        service.provenance(actor, project_id, path)  # NotFound when nothing is there
        return
    listing = service.list(actor, project_id, path, limit=1)
    if not (listing.items or listing.prefixes):
        raise NotFound(N_("No data at '%(path)s'."), params={"path": path})


@router.post("/projects/{project_id}/data/delete")
async def delete(request: Request, project_id: str) -> Response:
    """Delete the posted ``path`` (recoverably); back to its folder, saying how to
    restore it."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    path = form.get("path", "")
    _, chosen = await run_in_threadpool(
        _where, ctx, session.actor, project_id, form.get("branch", ""), path
    )
    await run_in_threadpool(DataService(ctx).delete, session.actor, project_id, path)
    folder = tab_url(project_id, chosen, "data", parent_folder(path))
    if path.endswith("/"):
        return done_redirect(folder, "folder-deleted")
    return done_redirect(f"{folder}&{urlencode({'deleted': path})}", "deleted")


@router.post("/projects/{project_id}/data/restore")
async def restore(request: Request, project_id: str) -> Response:
    """Make the posted ``version`` of ``path`` current again; back to the file."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    path = form.get("path", "")
    _, chosen = await run_in_threadpool(
        _where, ctx, session.actor, project_id, form.get("branch", ""), path
    )
    version = form.get("version", "")[:128]
    await run_in_threadpool(DataService(ctx).restore, session.actor, project_id, path, version)
    return done_redirect(data_page_url(project_id, "file", chosen, path), "restored")


@router.post("/projects/{project_id}/data/move")
async def move(request: Request, project_id: str) -> Response:
    """Move (rename) the posted ``path`` to ``to`` within the shown area; then the file
    at its new place."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    path, to = form.get("path", ""), form.get("to", "").strip()
    _, chosen = await run_in_threadpool(
        _where, ctx, session.actor, project_id, form.get("branch", ""), path
    )
    await run_in_threadpool(_where, ctx, session.actor, project_id, chosen, to)
    await run_in_threadpool(DataService(ctx).move, session.actor, project_id, path, to)
    return done_redirect(data_page_url(project_id, "file", chosen, to), "moved")


@router.post("/projects/{project_id}/data/uploads/discard")
async def discard_upload(request: Request, project_id: str) -> Response:
    """Drop the posted ``upload`` (the caller's own unfinished one) and its parts;
    back to the folder it was going into."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    uploads = UploadService(ctx)
    upload_id = form.get("upload", "")[:64]
    state = await run_in_threadpool(uploads.state, session.actor, project_id, upload_id)
    _, chosen = await run_in_threadpool(
        _where, ctx, session.actor, project_id, form.get("branch", ""), state.path
    )
    await run_in_threadpool(uploads.abort, session.actor, project_id, upload_id)
    return done_redirect(
        tab_url(project_id, chosen, "data", parent_folder(state.path)), "upload-discarded"
    )


@router.post("/projects/{project_id}/data/imports")
async def import_url(request: Request, project_id: str) -> Response:
    """Queue an import of the posted ``url`` as ``name`` in the posted ``folder`` (the
    import service's rules: public addresses only, unless allowed); back to the folder,
    which lists its imports."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    folder, name = form.get("folder", ""), form.get("name", "").strip().strip("/")
    url = form.get("url", "").strip()
    if not name:
        name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    target = f"{folder}{name}"
    _, chosen = await run_in_threadpool(
        _where, ctx, session.actor, project_id, form.get("branch", ""), target
    )
    try:
        body = ImportCreate(url=url[:2048] or None, target=target[:MAX_PATH])
    except ValidationError:
        raise InvalidInput(N_("Give the address of a file to fetch.")) from None
    await run_in_threadpool(ImportService(ctx).create, session.actor, project_id, body)
    return done_redirect(tab_url(project_id, chosen, "data", folder.rstrip("/")), "import-queued")


@router.get("/projects/{project_id}/data/usage")
async def usage_page(request: Request, project_id: str, branch: Branch = "") -> HTMLResponse:
    """Bytes and objects per top-level folder (each branch's, tmp/) and in all."""
    session = await require_session(request)
    ctx = get_ctx(request)
    project, chosen = await run_in_threadpool(
        project_on_branch, ctx, session.actor, project_id, branch
    )
    usage: DataUsage = await run_in_threadpool(DataService(ctx).usage, session.actor, project_id)
    return render(
        request,
        "project/data_usage.html",
        nav="projects",
        project=project,
        branch=chosen,
        usage=usage,
        data_url=tab_url(project_id, chosen, "data"),
    )


@router.get("/projects/{project_id}/data/deleted")
async def deleted_page(
    request: Request, project_id: str, branch: Branch = "", path: DataPath = ""
) -> HTMLResponse:
    """The deleted files under a folder (``path``), each linked to its page, where its
    versions are restored."""
    session = await require_session(request)
    ctx = get_ctx(request)
    folder = path if path.endswith("/") or not path else path + "/"
    project, chosen = await run_in_threadpool(
        _where, ctx, session.actor, project_id, branch, folder or f"{branch or 'main'}/"
    )
    folder = folder or f"{chosen}/"
    listing: DeletedListing = await run_in_threadpool(
        DataService(ctx).deleted, session.actor, project_id, folder
    )
    return render(
        request,
        "project/data_deleted.html",
        nav="projects",
        project=project,
        branch=chosen,
        folder=folder,
        listing=listing,
        data_page_url=data_page_url,
        retention_days=ctx.settings.storage.retention_days,
        data_url=tab_url(project_id, chosen, "data", folder.rstrip("/")),
    )


@router.get("/projects/{project_id}/data/folder")
async def new_folder(
    request: Request,
    project_id: str,
    name: Annotated[str, Query(max_length=200)],
    within: Annotated[str, Query(alias="in", max_length=MAX_PATH)] = "",
    branch: Branch = "",
) -> Response:
    """Into a new folder ``name`` in ``in``: storage keeps no empty folders (the data
    API writes objects only), so the folder exists once a file is uploaded into it."""
    session = await require_session(request)
    ctx = get_ctx(request)
    folder = f"{within}{name.strip().strip('/')}/"
    _, chosen = await run_in_threadpool(_where, ctx, session.actor, project_id, branch, folder)
    target = tab_url(project_id, chosen, "data", folder.rstrip("/"))
    return RedirectResponse(target, status_code=303)
