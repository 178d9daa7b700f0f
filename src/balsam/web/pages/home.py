"""My pages: your workspaces, and forms to create, stop, start and delete them.

Each action is a small form posting to ``/workspaces-ui/…`` (``/workspaces/…`` is
the proxy's), answered with a redirect back to ``/`` (303), or with the page again
showing the service's message under its status (404, 403, 409, 422). While a
workspace is pending the page reloads itself every 3 seconds (a meta refresh: no
script needed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.projects.service import ProjectService
from balsam.domain.workspaces.schemas import WorkspaceCreate
from balsam.domain.workspaces.service import WorkspaceService, workspace_url
from balsam.errors import BalsamError, InvalidInput, NotFound
from balsam.web.deps import get_ctx
from balsam.web.pages import i18n
from balsam.web.pages.forms import PageSession, posted_form, require_session, safe_next
from balsam.web.pages.i18n import N_
from balsam.web.pages.render import render
from balsam.web.pages.states import reason, reason_labels, reason_patterns, state_labels

router = APIRouter(include_in_schema=False)

#: Where the forms post; not under /workspaces/, which is the proxy's.
UI = "/workspaces-ui"
MAX_PROJECTS = 200
_ACTIONS: dict[str, Callable[[WorkspaceService, Actor, str], object]] = {
    "start": lambda service, actor, wid: service.start(actor, wid),
    "stop": lambda service, actor, wid: service.stop(actor, wid),
    "delete": lambda service, actor, wid: service.delete(actor, wid),
}


@dataclass(frozen=True)
class WorkspaceRow:
    """What the page shows of one workspace."""

    id: str
    name: str
    state: str
    state_reason: str | None
    project_id: str
    branch: str
    template_id: str
    locked: bool
    url: str


def workspace_row(ws: Any) -> WorkspaceRow:
    """``ws``: a workspace as :meth:`WorkspaceService.list_for` returns it."""
    return WorkspaceRow(
        id=ws.id,
        name=ws.name,
        state=ws.state,
        state_reason=ws.state_reason,
        project_id=ws.project_id,
        branch=ws.branch,
        template_id=ws.template_id,
        locked=ws.locked,
        url=workspace_url(ws.id),
    )


@dataclass
class Filled:
    """What the new-workspace form showed (kept when it is refused)."""

    name: str = ""
    target: str = ""
    template: str = ""


@dataclass
class HomeView:
    workspaces: list[WorkspaceRow]
    #: ``(value "project/branch", label)`` for every branch of the user's projects.
    targets: list[tuple[str, str]] = field(default_factory=list)
    templates: list[tuple[str, str]] = field(default_factory=list)
    #: Project ids to names (the table shows names; a project the user left keeps
    #: its id).
    project_names: dict[str, str] = field(default_factory=dict)


def load(ctx: AppContext, actor: Actor) -> HomeView:
    projects, _ = ProjectService(ctx).list(actor, include_all=False, limit=MAX_PROJECTS)
    targets = [(f"{p.id}/{b.id}", f"{p.name} / {b.id}") for p, _ in projects for b in p.branches]
    service = WorkspaceService(ctx)
    rows = [workspace_row(ws) for ws in service.list_for(actor, all_visible=False)]
    return HomeView(
        workspaces=rows,
        targets=targets,
        templates=[(t.id, t.name) for t in service.templates()],
        project_names={p.id: p.name for p, _ in projects},
    )


def _page(
    request: Request,
    view: HomeView,
    *,
    error: str = "",
    status: int = 200,
    filled: Filled | None = None,
) -> HTMLResponse:
    gettext = i18n.gettext(request)
    pending = any(ws.state == "pending" for ws in view.workspaces)
    return render(
        request,
        "home.html",
        status=status,
        nav="me",
        ui=UI,
        workspaces=view.workspaces,
        targets=view.targets,
        templates=view.templates,
        project_names=view.project_names,
        template_names=dict(view.templates),
        filled=filled or Filled(),
        error=error,
        states=state_labels(gettext),
        reasons=reason_labels(gettext),
        reason_patterns=reason_patterns(gettext),
        reason=lambda text: reason(gettext, text),
        refresh=pending and not error,
    )


async def _perform(
    request: Request,
    session: PageSession,
    work: Callable[[AppContext, Actor], object],
    filled: Filled | None = None,
    next_path: str = "/",
) -> Response:
    """Run ``work`` as the session's user: on to ``next_path`` (a path on this
    site), or this page with the error."""
    ctx = get_ctx(request)
    try:
        await run_in_threadpool(work, ctx, session.actor)
    except BalsamError as exc:
        view = await run_in_threadpool(load, ctx, session.actor)
        message = i18n.message_of(request, exc)
        return _page(request, view, error=message, status=exc.status, filled=filled)
    return RedirectResponse(next_path, status_code=303)


@router.get("/")
async def home(request: Request) -> Response:
    """Your workspaces and the forms to manage them (or the login form)."""
    session = await require_session(request)
    view = await run_in_threadpool(load, get_ctx(request), session.actor)
    return _page(request, view)


@router.post(UI)
async def create_workspace(request: Request) -> Response:
    """Create a workspace from the form (it starts in the background)."""
    session, form = await posted_form(request)
    filled = Filled(
        name=form.get("name", "").strip(),
        target=form.get("target", ""),
        template=form.get("template", ""),
    )
    project_id, _, branch_id = filled.target.partition("/")

    def create(ctx: AppContext, actor: Actor) -> object:
        try:
            data = WorkspaceCreate.model_validate(
                {
                    "name": filled.name,
                    "templateId": filled.template,
                    "projectId": project_id,
                    "branchId": branch_id,
                }
            )
        except ValidationError as exc:
            raise InvalidInput(
                N_(
                    "Give the workspace a name (at most 100 characters), and "
                    "choose a project, branch and template."
                )
            ) from exc
        return WorkspaceService(ctx).create(actor, data)

    return await _perform(request, session, create, filled, safe_next(form.get("next")))


@router.get(UI + "/{workspace_id}/delete")
async def delete_page(request: Request, workspace_id: str) -> Response:
    """Confirm deleting a workspace: its home, with any work not committed and
    pushed, goes with it."""
    session = await require_session(request)
    ws = await run_in_threadpool(
        WorkspaceService(get_ctx(request)).get, session.actor, workspace_id[:63]
    )
    return render(request, "workspace_delete.html", nav="me", ui=UI, ws=workspace_row(ws))


@router.post(UI + "/{workspace_id}/{action}")
async def workspace_action(request: Request, workspace_id: str, action: str) -> Response:
    """Start, stop or delete one of your workspaces."""
    session, _ = await posted_form(request)
    act = _ACTIONS.get(action)

    def run(ctx: AppContext, actor: Actor) -> object:
        if act is None or len(workspace_id) > 63 or "\x00" in workspace_id:
            raise NotFound("No such workspace or action.")
        return act(WorkspaceService(ctx), actor, workspace_id)

    return await _perform(request, session, run)
