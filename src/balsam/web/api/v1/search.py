"""Full-text search over the knowledge libraries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from balsam.domain.search.schemas import SearchResults
from balsam.domain.search.service import SearchService
from balsam.web.api.v1.common import problems
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["Search"])

SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=200,
        description="Words to find, all of them (case and diacritics ignored: `hamta` finds "
        "`Hämta`); the last word also matches as a prefix.",
    ),
]
SearchLimit = Annotated[int, Query(ge=1, le=100, description="Most results to return.")]


@router.get(
    "/search",
    response_model=SearchResults,
    operation_id="Search",
    responses=problems(401, 403, 422),
)
def search(actor: CurrentActor, ctx: Ctx, q: SearchText, limit: SearchLimit = 20) -> SearchResults:
    """Articles, resources, templates, example projects, notebooks, code and file names
    of every knowledge library the caller may read; title matches first."""
    return SearchService(ctx).search(actor, q, limit=limit)
