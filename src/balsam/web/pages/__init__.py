"""The portal: server-rendered HTML pages on the same domain services as the API.

One module per area (``auth``, ``home``, ``projects``, ``project``, ``admin``),
Jinja2 templates with autoescaping in ``templates/`` (a shared ``base.html`` layout), styles in
``static/`` served by Balsam itself, strings through the Swedish and English
gettext catalogs (:mod:`balsam.web.pages.i18n`). :func:`install` mounts it all.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from balsam.web.pages import (
    account,
    admin,
    admin_manage,
    auth,
    data,
    handover,
    home,
    library,
    oidc,
    project,
    projects,
    runs,
    search,
)
from balsam.web.pages.forms import LoginRequired, login_url
from balsam.web.pages.render import STATIC_ROOT

#: A static file's URL carries its content hash (``?v=``): cache it for a year.
STATIC_CACHE = "public, max-age=31536000, immutable"


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: dict) -> Response:  # type: ignore[override,type-arg]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = STATIC_CACHE
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    # After a refused post, come back to the start page, not to a form's target.
    next_path = exc.next_path if request.method in ("GET", "HEAD") else "/"
    return RedirectResponse(login_url(next_path), status_code=303)


def install(app: FastAPI) -> None:
    """Mount the pages, their static files, and the redirect to the login form."""
    for module in (
        auth,
        oidc,
        handover,
        home,
        projects,
        project,
        runs,
        data,
        library,
        account,
        search,
        admin,
        admin_manage,
    ):
        app.include_router(module.router)
    app.mount("/static", _Static(directory=str(STATIC_ROOT)), name="static")
    app.add_exception_handler(LoginRequired, _to_login)
