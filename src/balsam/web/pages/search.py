"""Search from the header: the knowledge libraries' articles, resources and
templates (with snippets), and the user's own projects by name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.projects.service import ProjectService
from balsam.domain.projects.views import project_public
from balsam.domain.search.service import SearchService
from balsam.errors import BalsamError
from balsam.web.deps import get_ctx
from balsam.web.pages import i18n
from balsam.web.pages.forms import require_session
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

MAX_QUERY = 200
MAX_HITS = 30
MAX_PROJECTS = 10


def _search(ctx: AppContext, actor: Actor, q: str) -> dict[str, Any]:
    projects, _ = ProjectService(ctx).list(actor, include_all=False, query=q, limit=MAX_PROJECTS)
    found = SearchService(ctx).search(actor, q, limit=MAX_HITS)
    return {
        "projects": [project_public(ctx, p, role) for p, role in projects],
        "hits": found.results,
        "total": found.total,
    }


@router.get("/search")
async def search_page(
    request: Request, q: Annotated[str, Query(max_length=MAX_QUERY)] = ""
) -> HTMLResponse:
    """Results for ``q``; the snippets are HTML the search service made safe."""
    session = await require_session(request)
    q = q.strip()
    context: dict[str, Any] = {"projects": [], "hits": [], "total": 0, "error": ""}
    if q:
        try:
            context = {
                **context,
                **await run_in_threadpool(_search, get_ctx(request), session.actor, q),
            }
        except BalsamError as exc:
            context["error"] = i18n.message_of(request, exc)
    return render(request, "search.html", nav="search", query=q, **context)
