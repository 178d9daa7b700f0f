"""The home page: your workspaces, and forms to create, stop, start and delete them.

Without scripts (the policy allows none): each action is a small form posting to
``/workspaces-ui/…`` (``/workspaces/…`` is the proxy's), answered with a redirect back
to ``/`` (303), or with the page again showing the service's message under its status
(404, 403, 409, 422). Posts are refused cross-site like login and logout, and are
authenticated by the session cookie alone; without a live session they go to the
login form. While a workspace is pending the page reloads itself every 3 seconds.

Built on :mod:`balsam.web.pages`' helpers; mounted by ``create_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.db.models import Workspace
from balsam.domain.identity.service import Actor
from balsam.domain.projects.service import ProjectService
from balsam.domain.workspaces.schemas import WorkspaceCreate
from balsam.domain.workspaces.service import WorkspaceService, workspace_url
from balsam.errors import BalsamError, InvalidInput, NotFound
from balsam.web.deps import Ctx, authenticate, get_ctx, session_actor
from balsam.web.pages import read_form, refuse_cross_site, render_page

router = APIRouter(include_in_schema=False)

#: Where the forms post; not under /workspaces/, which is the proxy's.
UI = "/workspaces-ui"
MAX_PROJECTS = 200
#: Reload while something is pending (a meta refresh: no script needed).
REFRESH = '<meta http-equiv="refresh" content="3; url=/">'
_ACTIONS: dict[str, Callable[[WorkspaceService, Actor, str], object]] = {
    "start": lambda service, actor, wid: service.start(actor, wid),
    "stop": lambda service, actor, wid: service.stop(actor, wid),
    "delete": lambda service, actor, wid: service.delete(actor, wid),
}


@dataclass
class _Filled:
    """What the new-workspace form showed (kept when it is refused)."""

    name: str = ""
    target: str = ""
    template: str = ""


@dataclass
class _View:
    username: str
    workspaces: list[Workspace]
    #: ``(value "project/branch", label)`` for every branch of the user's projects.
    targets: list[tuple[str, str]] = field(default_factory=list)
    templates: list[tuple[str, str]] = field(default_factory=list)


def _load(ctx: AppContext, actor: Actor) -> _View:
    projects, _ = ProjectService(ctx).list(actor, include_all=False, limit=MAX_PROJECTS)
    targets = [(f"{p.id}/{b.id}", f"{p.name} / {b.id}") for p, _ in projects for b in p.branches]
    workspaces = WorkspaceService(ctx)
    return _View(username=actor.username,
                 workspaces=workspaces.list_for(actor, all_visible=False),
                 targets=targets,
                 templates=[(t.id, t.name) for t in workspaces.templates()])


# -- rendering ------------------------------------------------------------------------


def _button(ws: Workspace, action: str, label: str) -> str:
    return (f'<form method="post" action="{UI}/{escape(ws.id)}/{action}">'
            f'<button type="submit" aria-label="{label} {escape(ws.name)}">{label}</button>'
            "</form>")


def _row(ws: Workspace) -> str:
    url = escape(workspace_url(ws.id))
    reason = f'<span class="reason">{escape(ws.state_reason)}</span>' if ws.state_reason else ""
    actions = []
    if ws.state == "running":
        actions.append(f'<a href="{url}lab" aria-label="Open {escape(ws.name)}">Open</a> ')
    if ws.state in ("pending", "running"):
        actions.append(_button(ws, "stop", "Stop"))
    elif not ws.locked:
        actions.append(_button(ws, "start", "Start"))
    actions.append(_button(ws, "delete", "Delete"))
    return (f'<tr><td><a href="{url}">{escape(ws.name)}</a></td>'
            f"<td>{escape(ws.state)}{reason}</td><td>{escape(ws.project_id)}</td>"
            f"<td>{escape(ws.branch)}</td><td>{escape(ws.template_id)}</td>"
            f"<td>{''.join(actions)}</td></tr>")


def _options(choices: list[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{escape(value)}"{" selected" if value == selected else ""}>'
        f"{escape(label)}</option>" for value, label in choices)


def _new_form(view: _View, filled: _Filled) -> str:
    if not view.targets:
        return ("<p>You are not a member of any project yet; create one (or ask to be "
                "added to one) to create workspaces.</p>")
    return (
        f'<form method="post" action="{UI}">'
        '<label for="ws-name">Name</label>'
        f'<input id="ws-name" name="name" required maxlength="100" value="{escape(filled.name)}">'
        '<label for="ws-target">Project and branch</label>'
        f'<select id="ws-target" name="target">{_options(view.targets, filled.target)}</select>'
        '<label for="ws-template">Template</label><select id="ws-template" name="template">'
        f"{_options(view.templates, filled.template)}</select>"
        '<button type="submit">Create workspace</button></form>')


def _home_page(view: _View, *, error: str = "", status: int = 200,
               filled: _Filled | None = None) -> HTMLResponse:
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    listing = ("<p>You have no workspaces.</p>" if not view.workspaces else
               "<table><thead><tr><th>Workspace</th><th>State</th><th>Project</th>"
               "<th>Branch</th><th>Template</th><th>Actions</th></tr></thead><tbody>"
               + "".join(_row(ws) for ws in view.workspaces) + "</tbody></table>")
    pending = any(ws.state == "pending" for ws in view.workspaces)
    return render_page("Your workspaces", (
        f"<header><p>Logged in as <strong>{escape(view.username)}</strong></p>"
        '<form method="post" action="/logout"><button type="submit">Log out</button></form>'
        f"</header><main><h1>Your workspaces</h1>{alert}{listing}"
        f"<h2>New workspace</h2>{_new_form(view, filled or _Filled())}</main>"),
        status, head=REFRESH if pending and not error else "")


# -- handlers -------------------------------------------------------------------------


async def _perform(request: Request, work: Callable[[AppContext, Actor], object],
                   filled: _Filled | None = None) -> Response:
    """Run ``work`` as the session's user: back to ``/``, or the page with the error."""
    ctx = get_ctx(request)
    actor = await run_in_threadpool(session_actor, request, ctx)
    if actor is None:
        return RedirectResponse("/login", status_code=303)
    try:
        await run_in_threadpool(work, ctx, actor)
    except BalsamError as exc:
        view = await run_in_threadpool(_load, ctx, actor)
        return _home_page(view, error=exc.message, status=exc.status, filled=filled)
    return RedirectResponse("/", status_code=303)


@router.get("/")
def home(request: Request, ctx: Ctx) -> Response:
    """Your workspaces and the forms to manage them, or the login form."""
    try:
        actor = authenticate(request, ctx)
    except BalsamError:
        return RedirectResponse("/login", status_code=303)
    return _home_page(_load(ctx, actor))


@router.post(UI)
async def create_workspace(request: Request) -> Response:
    """Create a workspace from the form (it starts in the background)."""
    refuse_cross_site(request, get_ctx(request))
    form = await read_form(request)
    filled = _Filled(name=form.get("name", "").strip(), target=form.get("target", ""),
                     template=form.get("template", ""))
    project_id, _, branch_id = filled.target.partition("/")

    def create(ctx: AppContext, actor: Actor) -> object:
        try:
            data = WorkspaceCreate.model_validate({
                "name": filled.name, "templateId": filled.template, "projectId": project_id,
                "branchId": branch_id})
        except ValidationError as exc:
            raise InvalidInput("Give the workspace a name (at most 100 characters), and "
                               "choose a project, branch and template.") from exc
        return WorkspaceService(ctx).create(actor, data)

    return await _perform(request, create, filled)


@router.post(UI + "/{workspace_id}/{action}")
async def workspace_action(request: Request, workspace_id: str, action: str) -> Response:
    """Start, stop or delete one of your workspaces."""
    refuse_cross_site(request, get_ctx(request))
    act = _ACTIONS.get(action)

    def run(ctx: AppContext, actor: Actor) -> object:
        if act is None or len(workspace_id) > 63 or "\x00" in workspace_id:
            raise NotFound("No such workspace or action.")
        return act(WorkspaceService(ctx), actor, workspace_id)

    return await _perform(request, run)
