"""Each kind of request on its own port and host name (see :mod:`balsam.web.origins`):

* on the workspace port only ``/workspaces/…`` (and the public ``/static/`` assets
  of Balsam's error pages) are served, and workspace ``w``'s only under ``w``'s host
  name; asked for under another name, a ``GET`` is redirected to the same address
  under ``w``'s (no workspace page ever runs where the portal's cookies, or another
  workspace's, live) and anything else refused with 421 — except a request with a
  bearer token, a script's, which carries no cookie of a browser's and may come by
  ``127.0.0.1``; a portal page asked for there (someone typed the port) is sent to
  the portal, anything else is refused;
* on the portal's port ``/workspaces/<w>/…`` is sent over: a ``GET``/``HEAD`` (a
  link or bookmark) by a 307 redirect, anything else refused with 421; a page asked
  for under a workspace's host name (or the other loopback name) is redirected to
  the portal's.
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
    hosts_workspace,
    on_workspace_port,
    portal_elsewhere,
    portal_origin,
    request_host,
    workspace_id_of,
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
        host = request_host(scope, self.settings).lower()
        workspace_id = workspace_id_of(path)
        if on_workspace_port(scope, self.settings):
            await self._workspace_port(scope, receive, send, host, workspace_id)
        elif path.startswith(WORKSPACE_PREFIX):
            origin = workspace_origin(scope, self.settings, workspace_id) if workspace_id else None
            await self._elsewhere(scope, receive, send, origin)
        elif portal_elsewhere(self.settings, host) and _a_browsers_page_visit(scope):
            # A workspace's name (or the other loopback one) typed for the portal: its
            # cookies belong under its own. (Scripts and tools, which hold no cookies
            # of the browser's, are served.)
            target = portal_origin(scope, self.settings) + _path_and_query(scope)
            await RedirectResponse(target, status_code=307)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _workspace_port(
        self, scope: Scope, receive: Receive, send: Send, host: str, workspace_id: str | None
    ) -> None:
        path: str = scope["path"]
        if workspace_id is not None:
            if hosts_workspace(self.settings, host, workspace_id) or _bearer(scope):
                await self.app(scope, receive, send)
            else:
                origin = workspace_origin(scope, self.settings, workspace_id)
                await self._elsewhere(scope, receive, send, origin)
        elif path.startswith(SHARED_PREFIXES):  # assets, the hand-over, unknown ids
            await self.app(scope, receive, send)
        elif _a_page_visit(scope):  # a person who typed this port: to the portal
            target = portal_origin(scope, self.settings) + _path_and_query(scope)
            await RedirectResponse(target, status_code=307)(scope, receive, send)
        else:
            await self._refuse(scope, receive, send, 404, "Only workspaces are served here.")

    async def _elsewhere(
        self, scope: Scope, receive: Receive, send: Send, origin: str | None
    ) -> None:
        """Served at ``origin``: a GET/HEAD is sent there, anything else refused (421);
        404 when there is no such place (no workspace id in the path)."""
        if origin is None:
            await self._refuse(scope, receive, send, 404, "No such workspace.")
            return
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


def _bearer(scope: Scope) -> bool:
    """A request with a bearer token: a script's, not a browser page's."""
    scheme = Headers(scope=scope).get("authorization", "").partition(" ")[0]
    return scheme.lower() == "bearer"
