"""*Kunskapsbibliotek*: the knowledge libraries, their articles, resources,
templates and example projects, as pages.

``/library`` lists the libraries as cards. ``/library/<id>?tab=<t>`` shows one:
*Artiklar* (the folders and articles), *Resurser* (cards, each with *Kopiera till
projekt*), *Mallar och exempel* (cards with tags, the GIT link and *Skapa
projekt*, which opens *Nytt projekt* prefilled), and the library's README.
``/library/<id>/file/<file id>`` shows a file rendered; links between articles
and images inside them lead there too, so they resolve to Balsam's pages, never
to raw files elsewhere (an image, or ``?download=1``, is sent as the file itself).
Administrators see the sync state and *Synkronisera nu*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.library import catalog
from balsam.domain.library.render import render_file
from balsam.domain.library.reuse import ReuseService
from balsam.domain.library.schemas import ExampleCatalog, Rendered, ResourceCatalog, Template
from balsam.domain.library.service import LibraryService
from balsam.domain.library.views import library_public
from balsam.domain.projects.naming import decode_file_id, encode_file_id
from balsam.domain.projects.service import ProjectService
from balsam.errors import BalsamError, Conflict
from balsam.web.deps import get_ctx, queue_sync
from balsam.web.pages import i18n
from balsam.web.pages.downloads import as_stream
from balsam.web.pages.forms import posted_form, require_session, safe_next
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

TABS = ("articles", "resources", "templates", "readme")
MAX_TARGETS = 200


def page_links(library_id: str) -> catalog.LibraryLinks:
    """Links inside rendered files lead to the file's page (``/file/<id>``)."""
    return _PageLinks(f"/library/{library_id}")


class _PageLinks(catalog.LibraryLinks):
    def content(self, path: str) -> str:
        return f"{self.base}/file/{encode_file_id(path)}"

    def render(self, path: str) -> str:
        return self.content(path)


@dataclass
class LibraryView:
    library: Any  # KnowledgeLibraryPublic
    tab: str
    articles: list[Any] = field(default_factory=list)
    resources: ResourceCatalog | None = None
    templates: list[Template] = field(default_factory=list)
    examples: ExampleCatalog | None = None
    readme: Rendered | None = None
    #: ``(project/branch, label)`` for *Kopiera till projekt*.
    targets: list[tuple[str, str]] = field(default_factory=list)


def _targets(ctx: AppContext, actor: Actor) -> list[tuple[str, str]]:
    projects, _ = ProjectService(ctx).list(actor, include_all=False, limit=MAX_TARGETS)
    return [(f"{p.id}/{b.id}", f"{p.name} / {b.id}") for p, _ in projects for b in p.branches]


def load(ctx: AppContext, actor: Actor, library_id: str, tab: str) -> LibraryView:
    service = LibraryService(ctx)
    view = LibraryView(library_public(service.get(library_id)), tab if tab in TABS else "articles")
    tree = service.tree(library_id)
    links = page_links(library_id)
    if view.tab == "articles":
        view.articles = catalog.articles(tree, links)
    elif view.tab == "resources":
        view.resources = catalog.resources(tree, links)
        view.targets = _targets(ctx, actor)
    elif view.tab == "templates":
        view.templates = [t for t in catalog.templates(tree, links) if t.error is None]
        view.examples = catalog.examples(tree, links)
    else:
        readme = catalog.find_readme(tree, "")
        if readme is not None:
            view.readme = render_file(
                tree, readme, links, max_bytes=ctx.settings.library_render_max_bytes
            )
    return view


def _tabs(request: Request) -> dict[str, str]:
    gettext = i18n.gettext(request)
    return {
        "articles": gettext("Articles"),
        "resources": gettext("Resources"),
        "templates": gettext("Templates and examples"),
        "readme": "README",
    }


@router.get("/library")
async def libraries_page(request: Request) -> HTMLResponse:
    """The knowledge libraries as cards."""
    await require_session(request)
    ctx = get_ctx(request)
    libraries = await run_in_threadpool(
        lambda: [library_public(lib) for lib in LibraryService(ctx).list()]
    )
    return render(request, "library/list.html", nav="library", libraries=libraries)


def _library_page(
    request: Request, view: LibraryView, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    context = {"error": "", "conflict": None, "copied": None} | extra
    return render(
        request,
        "library/page.html",
        status=status,
        nav="library",
        view=view,
        library=view.library,
        tabs=_tabs(request),
        **context,
    )


@router.get("/library/{library_id}")
async def library_page(
    request: Request, library_id: str, tab: Annotated[str, Query(max_length=20)] = "articles"
) -> HTMLResponse:
    session = await require_session(request)
    view = await run_in_threadpool(load, get_ctx(request), session.actor, library_id, tab)
    return _library_page(request, view)


@dataclass(frozen=True)
class _FileView:
    library: Any
    path: str
    rendered: Rendered
    download: str


def _file(ctx: AppContext, library_id: str, file_id: str) -> _FileView:
    """The rendered file (an image is sent as itself: see :func:`_raw`)."""
    service = LibraryService(ctx)
    library = library_public(service.get(library_id))
    tree = service.tree(library_id)
    path = decode_file_id(file_id)
    rendered = render_file(
        tree, path, page_links(library_id), max_bytes=ctx.settings.library_render_max_bytes
    )
    download = f"/library/{library_id}/file/{file_id}?download=1"
    return _FileView(library, path, rendered, download)


@router.get("/library/{library_id}/file/{file_id}")
async def file_page(
    request: Request,
    library_id: str,
    file_id: str,
    download: Annotated[bool, Query()] = False,
) -> Response:
    """A library file: rendered in the portal, or (images, ``download``) the file."""
    await require_session(request)
    ctx = get_ctx(request)
    if download:
        return await run_in_threadpool(_raw, ctx, library_id, file_id, True)
    view = await run_in_threadpool(_file, ctx, library_id, file_id)
    if view.rendered.kind == "image":
        return await run_in_threadpool(_raw, ctx, library_id, file_id, False)
    return render(request, "library/file.html", nav="library", file=view)


def _raw(ctx: AppContext, library_id: str, file_id: str, attachment: bool) -> Response:
    """The file itself, streamed (never all in memory)."""
    tree = LibraryService(ctx).tree(library_id)
    path = decode_file_id(file_id)
    return as_stream(path, tree.size(path), tree.stream(path), attachment=attachment)


@router.post("/library/{library_id}/copy")
async def copy_resource(request: Request, library_id: str) -> Response:
    """*Kopiera till projekt*: the resource onto the chosen project and branch; a
    resource already there comes back with the choice to overwrite it."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    project_id, _, branch_id = form.get("target", "").partition("/")
    file_id = form.get("resource", "")[:4096]
    overwrite = form.get("overwrite") == "1"
    try:
        result = await run_in_threadpool(
            lambda: ReuseService(ctx).copy_to_branch(
                session.actor, project_id, branch_id, library_id, file_id, overwrite=overwrite
            )
        )
    except BalsamError as exc:
        view = await run_in_threadpool(load, ctx, session.actor, library_id, "resources")
        conflict = {"target": form.get("target", ""), "resource": file_id}
        return _library_page(
            request,
            view,
            status=exc.status,
            error=i18n.message_of(request, exc),
            conflict=conflict if isinstance(exc, Conflict) else None,
        )
    next_path = safe_next(form.get("next"))
    if next_path != "/":  # e.g. back to the project's Resurser
        return RedirectResponse(next_path, status_code=303)
    view = await run_in_threadpool(load, ctx, session.actor, library_id, "resources")
    copied = {"project": project_id, "branch": branch_id, "files": result.paths}
    return _library_page(request, view, copied=copied)


@router.post("/library/{library_id}/sync")
async def sync_now(request: Request, library_id: str, background: BackgroundTasks) -> Response:
    """*Synkronisera nu* (administrators): the sync runs in the background."""
    session, _ = await posted_form(request)
    ctx = get_ctx(request)
    library = await run_in_threadpool(LibraryService(ctx).request_sync, session.actor, library_id)
    queue_sync(request, background, ctx, library.id)
    return RedirectResponse(f"/library/{library_id}", status_code=303)
