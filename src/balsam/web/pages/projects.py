"""*Projekt*: the projects list, *Nytt projekt* and *Ta bort projekt*.

The list shows the projects the user is a member of (administrators may ask for
every project) as cards, with a filter and pages of :data:`PAGE_SIZE`. Each card
has a cog (*Inställningar*, a ``<details>`` menu: no script needed) leading to
*Ta bort projekt*, a page that asks for the project's name: the server deletes
nothing unless the name matches (a script only keeps OK disabled until then).

*Nytt projekt* (``/new-project``; ``/projects/new`` would be a project's page)
takes Namn, Beskrivning, Branchnamn and *Skapa från Mall eller Exempel*; a
refused form comes back with the message next to its field. A created project's
first S3 key is shown once, on the page the form answers with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.library.starting_points import StartingPoint, parse_value, starting_points
from balsam.domain.projects.schemas import ProjectCreate, ProjectCreated, ProjectPublic
from balsam.domain.projects.service import ProjectService
from balsam.domain.projects.views import project_created, project_public
from balsam.errors import BalsamError, InvalidInput
from balsam.web.deps import get_ctx
from balsam.web.pages import i18n
from balsam.web.pages.forms import posted_form, require_session
from balsam.web.pages.i18n import N_
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 24
MAX_QUERY = 200
NEW = "/new-project"
DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class ProjectsView:
    projects: list[ProjectPublic]
    total: int
    page: int
    pages: int


def load_projects(
    ctx: AppContext, actor: Actor, *, query: str, page: int, everything: bool
) -> ProjectsView:
    rows, total = ProjectService(ctx).list(
        actor,
        include_all=everything,
        query=query,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-total // PAGE_SIZE))
    return ProjectsView(
        projects=[project_public(ctx, p, role) for p, role in rows],
        total=total,
        page=page,
        pages=pages,
    )


@router.get("/projects")
async def projects_page(
    request: Request,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    all: Annotated[bool, Query()] = False,
    deleted: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """The user's projects as cards (administrators: every project with ``all``);
    ``deleted`` says the user has just deleted one (the confirmation names no
    project: a link anybody can craft must not put words in Balsam's mouth)."""
    session = await require_session(request)
    everything = all and session.actor.is_admin
    view = await run_in_threadpool(
        load_projects,
        get_ctx(request),
        session.actor,
        query=q.strip(),
        page=page,
        everything=everything,
    )

    def page_url(number: int) -> str:
        params = {"q": q, "page": str(number)} | ({"all": "1"} if everything else {})
        return "/projects?" + urlencode({k: v for k, v in params.items() if v})

    return render(
        request,
        "projects/list.html",
        nav="projects",
        view=view,
        query=q,
        everything=everything,
        page_url=page_url,
        deleted=deleted,
    )


# -- Nytt projekt ------------------------------------------------------------------


@dataclass
class NewProjectForm:
    """What the form shows: the values typed, and errors by field."""

    name: str = ""
    description: str = ""
    branch: str = DEFAULT_BRANCH
    source: str = ""
    errors: dict[str, str] | None = None


def _new_page(
    request: Request, form: NewProjectForm, points: list[StartingPoint], *, status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "projects/new.html",
        status=status,
        nav="projects",
        form=form,
        errors=form.errors or {},
        points=points,
        action=NEW,
    )


@router.get(NEW)
async def new_project_page(
    request: Request, source: Annotated[str, Query(max_length=5000)] = ""
) -> HTMLResponse:
    """*Nytt projekt*; ``source`` preselects a template or example (its card's
    *Skapa projekt*)."""
    await require_session(request)
    points = await run_in_threadpool(starting_points, get_ctx(request))
    return _new_page(request, NewProjectForm(source=source), points)


def _create(ctx: AppContext, actor: Actor, form: NewProjectForm) -> ProjectCreated:
    fields: dict[str, Any] = {
        "name": form.name,
        "description": form.description,
        "branchName": form.branch,
    }
    if form.source:
        parsed = parse_value(form.source)
        if parsed is None:
            raise InvalidInput(
                N_("Choose a template or example from the list."), details={"field": "source"}
            )
        fields["source"] = {"libraryId": parsed[0], "path": parsed[1]}
    try:
        data = ProjectCreate.model_validate(fields)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors() else ""
        raise InvalidInput(
            N_("The text is too long."),
            details={"field": {"branchName": "branch"}.get(field, field)},
        ) from exc
    return project_created(ctx, ProjectService(ctx).create(actor, data))


@router.post(NEW)
async def create_project(request: Request) -> Response:
    """Create the project; show its first key once, or the form with the error."""
    session, posted = await posted_form(request)
    form = NewProjectForm(
        name=posted.get("name", ""),
        description=posted.get("description", ""),
        branch=posted.get("branchName", "").strip(),
        source=posted.get("source", ""),
    )
    ctx = get_ctx(request)
    try:
        created = await run_in_threadpool(_create, ctx, session.actor, form)
    except BalsamError as exc:
        # The template's repository (the page has no URL field: it is the chosen one's).
        field = str(exc.details.get("field", ""))
        field = "source" if field == "sourceLocation" else field
        message = i18n.message_of(request, exc)
        form.errors = {field if field in ("name", "branch", "source") else "form": message}
        points = await run_in_threadpool(starting_points, ctx)
        return _new_page(request, form, points, status=exc.status)
    return render(
        request,
        "projects/created.html",
        status=201,
        nav="projects",
        project=created,
        key=created.credentials,
    )


# -- Ta bort projekt ---------------------------------------------------------------


def _owned(ctx: AppContext, actor: Actor, project_id: str) -> ProjectPublic:
    service = ProjectService(ctx)
    project = service.require_owner(actor, project_id, "project.delete")
    return project_public(ctx, project, service.role(actor, project_id))


@router.get("/projects/{project_id}/delete")
async def delete_page(request: Request, project_id: str) -> HTMLResponse:
    """*Ta bort projekt*: what goes for good, and the name to type (owners, admins)."""
    session = await require_session(request)
    project = await run_in_threadpool(_owned, get_ctx(request), session.actor, project_id)
    return render(request, "projects/delete.html", nav="projects", project=project, error="")


@router.post("/projects/{project_id}/delete")
async def delete_project(request: Request, project_id: str) -> Response:
    """Delete the project when the typed name is its name; else the page again."""
    session, posted = await posted_form(request)
    ctx = get_ctx(request)
    project = await run_in_threadpool(_owned, ctx, session.actor, project_id)
    if posted.get("confirm", "").strip() != project.name:
        message = i18n.gettext(request)(N_("Type the project's name exactly to delete it."))
        return render(
            request,
            "projects/delete.html",
            status=422,
            nav="projects",
            project=project,
            error=message,
        )
    await run_in_threadpool(ProjectService(ctx).delete, session.actor, project_id)
    return RedirectResponse("/projects?deleted=1", status_code=303)
