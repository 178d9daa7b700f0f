"""A project's page: the branch selector and the tabs.

``/projects/<id>?branch=<b>&tab=<t>``: the branch and the tab are in the URL, so
every view can be linked and reloaded. Tabs: *README* (the branch's README,
rendered and sanitised), *Filer* (the branch's files), *Data* (the branch's and
``tmp/``'s data in the bucket, a folder at a time: :mod:`.data_folder`; its other
pages are :mod:`.data`), *Bearbetningsmiljöer* (the user's workspaces on the branch,
and a form for a new one), *Medlemmar* (everyone sees the list; owners add, change and
remove), *Nycklar* (the user's S3 keys; owners see every key): create — the secret is
shown once — and revoke.

Every form posts under ``/projects/<id>/…`` and is answered with a redirect back
to its tab (303), or with the page again showing the service's message (404,
403, 409, 422). What a user may see and do is decided by the domain services;
the page only leaves out buttons that would be refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.audit.activity import project_activity
from balsam.domain.audit.views import AuditPage
from balsam.domain.credentials.service import CredentialService
from balsam.domain.credentials.views import credential_created, credential_public
from balsam.domain.data.import_schemas import ImportPublic
from balsam.domain.data.imports import ImportService
from balsam.domain.data.schemas import UploadState
from balsam.domain.data.uploads import UploadService
from balsam.domain.identity.service import Actor
from balsam.domain.library.starting_points import OfferedResource, every_resource
from balsam.domain.projects.branches import BranchService
from balsam.domain.projects.files import FileService
from balsam.domain.projects.members import MemberService
from balsam.domain.projects.schemas import (
    BranchCreate,
    CredentialPublic,
    MemberAdd,
    MemberPublic,
    ProjectPublic,
)
from balsam.domain.projects.service import ProjectService
from balsam.domain.projects.views import member_public, project_public
from balsam.domain.runs.execution import claim_next, run_run
from balsam.domain.runs.schemas import RunPublic
from balsam.domain.runs.service import RunService
from balsam.domain.workspaces.service import WorkspaceService
from balsam.errors import BalsamError, InvalidInput, NotFound
from balsam.providers.git.base import TreeEntry
from balsam.web.api.v1.common import wake_worker
from balsam.web.deps import get_ctx
from balsam.web.pages import i18n
from balsam.web.pages.data_folder import (
    DataFolder,
    api_data_url,
    data_page_url,
    load_folder,
)
from balsam.web.pages.downloads import as_stream
from balsam.web.pages.forms import PageSession, done_message, posted_form, require_session
from balsam.web.pages.home import WorkspaceRow, workspace_row
from balsam.web.pages.i18n import N_
from balsam.web.pages.render import render
from balsam.web.pages.runs import run_create, run_labels, run_url, runnable
from balsam.web.pages.states import reason, state_labels

router = APIRouter(include_in_schema=False)

TABS = (
    "readme", "files", "resources", "data", "workspaces", "runs", "members", "keys", "activity"
)  # fmt: skip
RUNS_SHOWN = 50
ACTIVITY_PAGE = 50
IMPORTS_SHOWN = 10
MAX_FOLDER_PATH = 4096
#: What the *Data* tab says after a data page's form worked (``?done=``).
DATA_DONE = {
    "uploaded": N_("Uploaded."),
    "deleted": N_("Deleted. It can be restored from its versions for the retention period."),
    "folder-deleted": N_(
        "The folder is deleted. Each file in it can be restored from its versions "
        "for the retention period."
    ),
    "upload-discarded": N_("The unfinished upload is discarded."),
    "import-queued": N_(
        "The import has started: the file appears here when it is fetched. Reload to "
        "see how it goes."
    ),
}


@dataclass
class ProjectView:
    """What one tab of the project page shows."""

    project: ProjectPublic
    branch: str
    tab: str
    readme_html: str | None = None
    files: list[TreeEntry] = field(default_factory=list)
    folder: str = ""
    activity: AuditPage | None = None
    #: *Resurser*: what is in Resources/ on the branch, and what the libraries offer.
    resources: list[TreeEntry] = field(default_factory=list)
    offered: list[OfferedResource] = field(default_factory=list)
    resource_query: str = ""
    #: The S3 endpoint and region, and the folder shown (the *Data* tab).
    storage: dict[str, str] = field(default_factory=dict)
    data: DataFolder | None = None
    #: *Data*: the user's own unfinished uploads into the folder shown.
    unfinished: list[UploadState] = field(default_factory=list)
    #: *Data*: the project's latest imports into the folder shown (newest first).
    imports: list[ImportPublic] = field(default_factory=list)
    #: *Data*: the path the page starts after (the API's ``after``).
    after: str = ""
    page: int = 1
    members: list[MemberPublic] = field(default_factory=list)
    keys: list[CredentialPublic] = field(default_factory=list)
    workspaces: list[WorkspaceRow] = field(default_factory=list)
    templates: list[tuple[str, str]] = field(default_factory=list)
    #: *Körningar*: the project's latest runs (newest first).
    runs: list[RunPublic] = field(default_factory=list)

    @property
    def is_owner(self) -> bool:
        return self.project.role == "owner"


def load(
    ctx: AppContext,
    actor: Actor,
    project_id: str,
    branch: str | None,
    tab: str,
    folder: str = "",
    page: int = 1,
    resource_query: str = "",
    after: str = "",
) -> ProjectView:
    """The project (NotFound unless the actor may see it) and the tab's content
    (``folder``: the folder the *Filer* or the *Data* tab shows; ``after``: where
    *Data*'s page starts)."""
    project, chosen = project_on_branch(ctx, actor, project_id, branch)
    view = ProjectView(
        project=project,
        branch=chosen,
        tab=tab if tab in TABS else "readme",
        folder=folder,
        page=page,
        resource_query=resource_query,
        after=after,
    )
    _fill(ctx, actor, view)
    return view


def project_on_branch(
    ctx: AppContext, actor: Actor, project_id: str, branch: str | None
) -> tuple[ProjectPublic, str]:
    """The project (NotFound unless the actor may see it) and the branch asked for
    (its default one for None or ''; NotFound for one it does not have)."""
    service = ProjectService(ctx)
    project = project_public(ctx, service.get(actor, project_id), service.role(actor, project_id))
    default = next((b.id for b in project.branches if b.is_default), "")
    chosen = branch or default
    if chosen not in {b.id for b in project.branches}:
        raise NotFound(N_("No such branch in this project."))
    return project, chosen


def _fill(ctx: AppContext, actor: Actor, view: ProjectView) -> None:
    pid, branch = view.project.id, view.branch
    if view.tab == "readme":
        view.readme_html = FileService(ctx).readme_html(actor, pid, branch)
    elif view.tab == "files":
        view.files = FileService(ctx).list_folder(actor, pid, branch, view.folder)
        view.files.sort(key=lambda e: (e.type != "Folder", e.name.casefold()))
    elif view.tab == "resources":
        files = FileService(ctx)
        with contextlib.suppress(NotFound):  # no Resources/ folder yet
            view.resources = files.list_folder(actor, pid, branch, "Resources")
        view.offered = every_resource(ctx, view.resource_query)
    elif view.tab == "data":
        storage = ctx.providers.storage
        view.storage = {"endpoint": storage.endpoint_url, "region": storage.region}
        view.data = load_folder(ctx, actor, pid, branch, view.folder, view.after)
        prefix = view.data.prefix
        uploads = UploadService(ctx).unfinished(actor, pid).uploads
        view.unfinished = [u for u in uploads if u.path.startswith(prefix)]
        imports = ImportService(ctx).list(actor, pid).items
        view.imports = [i for i in imports if i.target.startswith(prefix)][:IMPORTS_SHOWN]
    elif view.tab == "activity":
        offset = (view.page - 1) * ACTIVITY_PAGE
        view.activity = project_activity(ctx, actor, pid, limit=ACTIVITY_PAGE, offset=offset)
    elif view.tab == "members":
        view.members = [member_public(m) for m in MemberService(ctx).list(actor, pid)]
    elif view.tab == "keys":
        view.keys = [
            credential_public(ctx, c, owner, pid)
            for c, owner in CredentialService(ctx).list(actor, pid)
        ]
    elif view.tab == "runs":
        view.runs = RunService(ctx).list(actor, pid, limit=RUNS_SHOWN, offset=0).items
        view.templates = [(t.id, t.name) for t in WorkspaceService(ctx).templates()]
    elif view.tab == "workspaces":
        service = WorkspaceService(ctx)
        view.workspaces = [
            workspace_row(ws)
            for ws in service.list_for(actor, project_id=pid, branch_id=branch, all_visible=False)
        ]
        view.templates = [(t.id, t.name) for t in service.templates()]


def tab_url(project_id: str, branch: str, tab: str, path: str = "") -> str:
    """The page's address; no ``branch`` for the default one (an empty value)."""
    query = ({"branch": branch} if branch else {}) | {"tab": tab} | ({"path": path} if path else {})
    return f"/projects/{project_id}?" + urlencode(query)


def tab_page(request: Request, view: ProjectView, *, status: int = 200, error: str = "",
          created_key: Any = None, in_form: str = "",
          filled: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    gettext = i18n.gettext(request)
    tabs = {
        "readme": "README",
        "files": gettext("Files"),
        "resources": gettext("Resources"),
        "data": gettext("Data"),
        "workspaces": gettext("Workspaces"),
        "runs": gettext("Runs"),
        "members": gettext("Members"),
        "keys": gettext("Keys"),
        "activity": gettext("Activity"),
    }
    if not (view.is_owner or request.state.page_session.actor.is_admin):
        del tabs["activity"]  # the service refuses it to them anyway
    return render(
        request,
        "project/page.html",
        status=status,
        nav="projects",
        view=view,
        project=view.project,
        tabs=tabs,
        states=state_labels(gettext),
        run_states=run_labels(request),
        run_url=run_url,
        default_template=get_ctx(request).settings.runs.default_template,
        reason=lambda text: reason(gettext, text),
        tab_url=tab_url,
        file_url=file_url,
        api_data_url=api_data_url,
        data_page_url=data_page_url,
        tmp_max_days=get_ctx(request).settings.storage.tmp_max_days,
        upload_hours=get_ctx(request).settings.storage.upload_hours,
        done=done_message(request, DATA_DONE),
        deleted=request.query_params.get("deleted", ""),
        error=error,
        in_form=in_form,
        filled=filled or {},
        created_key=created_key,
        # The branch bar's + (SCB's *Skapa bearbetningsmiljö*, Alternativ 2): the
        # workspaces tab with its form open.
        new_workspace=request.query_params.get("new") == "workspace",
        refresh=view.tab == "workspaces"
        and any(ws.state == "pending" for ws in view.workspaces)
        and not error,
    )


@router.get("/projects/{project_id}")
async def project_page(
    request: Request,
    project_id: str,
    branch: Annotated[str | None, Query(max_length=200)] = None,
    tab: Annotated[str, Query(max_length=20)] = "readme",
    path: Annotated[str, Query(max_length=MAX_FOLDER_PATH)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    rq: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[str, Query(max_length=1024)] = "",
) -> HTMLResponse:
    """The project on a branch (the default one unless ``branch``), on one tab
    (*Filer* and *Data*: in the folder ``path``; *Data*: from ``after`` on)."""
    session = await require_session(request)
    view = await run_in_threadpool(
        load,
        get_ctx(request),
        session.actor,
        project_id,
        branch,
        tab,
        folder=path.strip("/"),
        page=page,
        resource_query=rq.strip(),
        after=after,
    )
    return tab_page(request, view)


def file_url(project_id: str, branch: str, path: str, *, download: bool = False) -> str:
    query = {"branch": branch, "path": path} | ({"download": "1"} if download else {})
    return f"/projects/{project_id}/file?" + urlencode(query)


@router.get("/projects/{project_id}/file")
async def file_page(
    request: Request,
    project_id: str,
    branch: Annotated[str, Query(max_length=200)],
    path: Annotated[str, Query(max_length=MAX_FOLDER_PATH)],
    download: Annotated[bool, Query()] = False,
) -> Response:
    """A file of the branch shown rendered or highlighted; an image (or with
    ``download``) the file itself, never run by the browser."""
    session = await require_session(request)
    ctx = get_ctx(request)
    files = FileService(ctx)
    download_url = file_url(project_id, branch, path, download=True)
    rendered = await run_in_threadpool(
        lambda: files.rendered(session.actor, project_id, branch, path, download_url=download_url)
    )
    if download or rendered.kind == "image":
        size, chunks = await run_in_threadpool(files.open, session.actor, project_id, branch, path)
        return as_stream(path, size, chunks, attachment=download)
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    return render(
        request,
        "project/file.html",
        nav="projects",
        project_id=project_id,
        branch=branch,
        file=rendered,
        folder_url=tab_url(project_id, branch, "files", folder),
        runnable=runnable(path),
        templates=[(t.id, t.name) for t in WorkspaceService(ctx).templates()],
        default_template=ctx.settings.runs.default_template,
        filled={},
        in_form="",
        error="",
    )


# -- actions -------------------------------------------------------------------------


async def _act(
    request: Request,
    session: PageSession,
    project_id: str,
    form: dict[str, str],
    tab: str,
    work: Callable[[AppContext, Actor], object],
    *,
    in_form: str = "",
) -> Response:
    """Run ``work``; back to the tab (on the branch the form named), or the tab
    again with the service's message (next to the form ``in_form``, with what was
    typed kept, when the refusal is about what the form asked)."""
    ctx = get_ctx(request)
    branch = form.get("branch") or None
    try:
        await run_in_threadpool(work, ctx, session.actor)
    except BalsamError as exc:
        view = await run_in_threadpool(load, ctx, session.actor, project_id, branch, tab)
        message = i18n.message_of(request, exc)
        return tab_page(
            request, view, status=exc.status, error=message, in_form=in_form, filled=form
        )
    view_branch = branch or ""
    return RedirectResponse(tab_url(project_id, view_branch, tab), status_code=303)


@router.post("/projects/{project_id}/branches")
async def create_branch(request: Request, project_id: str) -> Response:
    """A new branch from the chosen one; then the page on the new branch."""
    session, form = await posted_form(request)
    name = form.get("name", "").strip()

    def create(ctx: AppContext, actor: Actor) -> object:
        try:
            data = BranchCreate.model_validate({"name": name, "fromBranch": form.get("from")})
        except ValidationError as exc:
            raise InvalidInput(N_("The branch name is too long.")) from exc
        return BranchService(ctx).create(actor, project_id, data)

    response = await _act(request, session, project_id, form, "readme", create)
    if isinstance(response, RedirectResponse):
        return RedirectResponse(tab_url(project_id, name, "readme"), status_code=303)
    return response


@router.get("/projects/{project_id}/branches/{branch}/delete")
async def delete_branch_page(request: Request, project_id: str, branch: str) -> HTMLResponse:
    """Confirm deleting a branch (owners; never the default branch)."""
    session = await require_session(request)
    ctx = get_ctx(request)
    await run_in_threadpool(
        ProjectService(ctx).require_owner, session.actor, project_id, "branch.delete"
    )
    view = await run_in_threadpool(load, ctx, session.actor, project_id, branch, "readme")
    return render(request, "project/delete_branch.html", nav="projects", view=view)


@router.post("/projects/{project_id}/branches/{branch}/delete")
async def delete_branch(request: Request, project_id: str, branch: str) -> Response:
    session, form = await posted_form(request)
    form = {**form, "branch": ""}  # back to the default branch

    def delete(ctx: AppContext, actor: Actor) -> object:
        BranchService(ctx).delete(actor, project_id, branch)
        return None

    return await _act(request, session, project_id, form, "readme", delete)


@router.post("/projects/{project_id}/members")
async def add_member(request: Request, project_id: str) -> Response:
    session, form = await posted_form(request)

    def add(ctx: AppContext, actor: Actor) -> object:
        try:
            data = MemberAdd.model_validate(
                {"username": form.get("username", "").strip(), "role": form.get("role")}
            )
        except ValidationError as exc:
            raise InvalidInput(N_("Give a user name and a role.")) from exc
        return MemberService(ctx).add(actor, project_id, data)

    return await _act(request, session, project_id, form, "members", add, in_form="member")


@router.post("/projects/{project_id}/members/{username}/{action}")
async def change_member(request: Request, project_id: str, username: str, action: str) -> Response:
    """``role`` (to the posted role) or ``remove``."""
    session, form = await posted_form(request)

    def change(ctx: AppContext, actor: Actor) -> object:
        service = MemberService(ctx)
        role = form.get("role")
        if action == "remove":
            service.remove(actor, project_id, username)
        elif action == "role" and role in ("owner", "member"):
            service.change_role(actor, project_id, username, role)  # type: ignore[arg-type]
        else:
            raise NotFound(N_("No such action."))
        return None

    return await _act(request, session, project_id, form, "members", change)


@router.post("/projects/{project_id}/keys")
async def create_key(request: Request, project_id: str) -> Response:
    """Mint a key; the page shows its secret once (never stored, never redirected)."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    name = form.get("name", "").strip()[:100]
    try:
        row, key = await run_in_threadpool(
            CredentialService(ctx).mint, session.actor, project_id, name
        )
    except BalsamError as exc:
        view = await run_in_threadpool(load, ctx, session.actor, project_id, None, "keys")
        return tab_page(request, view, status=exc.status, error=i18n.message_of(request, exc))
    created = credential_created(ctx, row, key, session.actor.username)
    view = await run_in_threadpool(load, ctx, session.actor, project_id, None, "keys")
    return tab_page(request, view, status=201, created_key=created)


@router.post("/projects/{project_id}/keys/{access_key}/revoke")
async def revoke_key(request: Request, project_id: str, access_key: str) -> Response:
    session, form = await posted_form(request)

    def revoke(ctx: AppContext, actor: Actor) -> object:
        CredentialService(ctx).revoke(actor, project_id, access_key)
        return None

    return await _act(request, session, project_id, form, "keys", revoke)


@router.post("/projects/{project_id}/runs")
async def start_run(request: Request, project_id: str) -> Response:
    """*Kör*: start a run of the posted ``path`` on ``branch`` (``parameters``: a JSON
    object, optional); then the run's page. A refusal shows the *Körningar* tab with
    the form and why."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    try:
        data = run_create(form)
        created = await run_in_threadpool(RunService(ctx).create, session.actor, project_id, data)
    except BalsamError as exc:
        branch = form.get("branch") or None
        view = await run_in_threadpool(load, ctx, session.actor, project_id, branch, "runs")
        message = i18n.message_of(request, exc)
        return tab_page(request, view, status=exc.status, error=message, in_form="run",
                        filled=form)  # fmt: skip
    background = BackgroundTasks()
    wake_worker(request, background, "runs", claim_next, run_run, ctx)
    return RedirectResponse(run_url(project_id, created.id), status_code=303, background=background)
