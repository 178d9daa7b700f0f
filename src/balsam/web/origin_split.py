"""Each kind of request on its own port and host name (see :mod:`balsam.web.origins`):

* on the workspace port only ``/workspaces/…`` (and the public ``/static/`` assets
  of Balsam's error pages) are served, and only under the workspaces' host name; a
  page asked for under another name is redirected to the same address under that
  one (no workspace page ever runs where the portal's cookies live), a portal page
  asked for there (someone typed the port) to the portal, anything else is refused;
* on the portal's port ``/workspaces/…`` is sent over: a ``GET``/``HEAD`` (a link or
  bookmark) by a 307 redirect, anything else refused with 421; a page asked for
  under the workspaces' host name is redirected to the portal's.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from balsam.settings import Settings
from balsam.web.errors import problem
from balsam.web.origins import (
    SHARED_PREFIXES,
    WORKSPACE_PREFIX,
    on_workspace_port,
    portal_host,
    portal_origin,
    request_host,
    workspace_host,
    workspace_origin,
)


class OriginSplit:
    """Keep workspaces on their port and everything else on the portal's (see the
    module's docstring). A no-op when workspaces share the portal's origin."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # Fixed by the settings; every request is compared with them.
        self.workspace_host = workspace_host(settings)
        #: The workspaces' name when the portal has another (a page under it is sent
        #: to the portal's); None when there is nothing to send over.
        self.portal_elsewhere = (
            self.workspace_host
            if portal_host(settings) not in (None, self.workspace_host)
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.settings.workspace_port is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        host = request_host(scope, self.settings).lower()
        if on_workspace_port(scope, self.settings):
            if self.workspace_host not in (None, host):
                await self._elsewhere(scope, receive, send, workspace_origin(scope, self.settings))
            elif path.startswith(SHARED_PREFIXES):
                await self.app(scope, receive, send)
            elif _a_page_visit(scope):  # a person who typed this port: to the portal
                target = portal_origin(scope, self.settings) + _path_and_query(scope)
                await RedirectResponse(target, status_code=307)(scope, receive, send)
            else:
                await self._refuse(scope, receive, send, 404, "Only workspaces are served here.")
            return
        if path.startswith(WORKSPACE_PREFIX):
            await self._elsewhere(scope, receive, send, workspace_origin(scope, self.settings))
        elif host == self.portal_elsewhere and _a_browsers_page_visit(scope):
            # The workspaces' name typed for the portal: its cookies belong there.
            # (Scripts and tools, which hold no cookies of the browser's, are served.)
            target = portal_origin(scope, self.settings) + _path_and_query(scope)
            await RedirectResponse(target, status_code=307)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _elsewhere(
        self, scope: Scope, receive: Receive, send: Send, origin: str | None
    ) -> None:
        """Served at ``origin``: a GET/HEAD is sent there, anything else refused (421)."""
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


def _a_browsers_page_visit(scope: Scope) -> bool:
    """A page visit (:func:`_a_page_visit`) by a browser, which asks for HTML."""
    return _a_page_visit(scope) and "text/html" in Headers(scope=scope).get("accept", "")
