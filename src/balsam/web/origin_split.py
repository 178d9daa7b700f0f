"""Each kind of request on its own port (see :mod:`balsam.web.origins`):

* on the workspace port only ``/workspaces/…`` (and the public ``/static/`` assets
  of Balsam's error pages) are served; a portal page asked for there (someone typed
  the port) is redirected to the portal, anything else is 404;
* on the portal's port ``/workspaces/…`` is sent over: a ``GET``/``HEAD`` (a link or
  bookmark) by a 307 redirect, anything else refused with 421.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from balsam.settings import Settings
from balsam.web.errors import problem
from balsam.web.origins import (
    SHARED_PREFIXES,
    WORKSPACE_PREFIX,
    on_workspace_port,
    portal_origin,
    workspace_origin,
)


class OriginSplit:
    """Keep workspaces on their port and everything else on the portal's (see the
    module's docstring). A no-op when workspaces share the portal's origin."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.settings.workspace_port is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if on_workspace_port(scope, self.settings):
            if path.startswith(SHARED_PREFIXES):
                await self.app(scope, receive, send)
            elif _a_page_visit(scope):  # a person who typed this port: to the portal
                target = portal_origin(scope, self.settings) + _path_and_query(scope)
                await RedirectResponse(target, status_code=307)(scope, receive, send)
            else:
                await self._refuse(scope, receive, send, 404, "Only workspaces are served here.")
            return
        if not path.startswith(WORKSPACE_PREFIX):
            await self.app(scope, receive, send)
            return
        origin = workspace_origin(scope, self.settings)
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            target = f"{origin}{_path_and_query(scope)}"
            await RedirectResponse(target, status_code=307)(scope, receive, send)
            return
        await self._refuse(scope, receive, send, 421, f"Workspaces are served at {origin}.")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        await problem(status, detail)(scope, receive, send)


def _path_and_query(scope: Scope) -> str:
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    query = scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


def _a_page_visit(scope: Scope) -> bool:
    """A GET/HEAD of a portal page (not the API's or git's addresses)."""
    return (
        scope["type"] == "http"
        and scope["method"] in ("GET", "HEAD")
        and not scope["path"].startswith(("/api/", "/git/"))
    )
