"""Workspaces on an origin of their own.

JupyterLab runs code its user (or a notebook someone else wrote) chose; scripts in
its pages run with the page's origin. Served on the portal's origin, such a script
could read portal pages and the JSON API as that user. So Balsam serves workspaces
on another port (``Settings.workspace_port``): the browser keeps the two origins
apart (no reads across them without CORS, which Balsam never grants), while the
session cookie, which belongs to the host and not the port, still opens the
workspace. :mod:`balsam.web.origin_split` keeps each kind of request on its port.

Links to a workspace use the host the user came in on, so the cookie of
``localhost`` or of ``127.0.0.1``, whichever the user typed, goes with them (or the
configured ``workspaces.public_url``).
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Scope

from balsam.settings import Settings

WORKSPACE_PREFIX = "/workspaces/"
#: Served on the workspace port too: the assets of Balsam's own error pages.
SHARED_PREFIXES = (WORKSPACE_PREFIX, "/static/")
#: A host name or IPv4 address, or a bracketed IPv6 address (Host header, port cut).
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])$")


def request_host(conn: HTTPConnection | Scope, settings: Settings) -> str:
    """The host part of the address the user typed (``Host`` header, without its
    port), or the configured host when the header is missing or malformed."""
    headers = conn.headers if isinstance(conn, HTTPConnection) else Headers(scope=conn)
    raw = headers.get("host", "")
    # [::1]:8080 → [::1]; localhost:8080 → localhost
    host = raw.split("]", 1)[0] + "]" if raw.startswith("[") else raw.split(":", 1)[0]
    return host if _HOST.match(host) else settings.host


def _scheme(scope: Scope) -> str:
    return "https" if scope.get("scheme") in ("https", "wss") else "http"


def workspace_origin(conn: HTTPConnection | Scope, settings: Settings) -> str | None:
    """Where the browser reaches workspaces (scheme, host, port), or None when they
    share the portal's origin."""
    port = settings.workspace_port
    if port is None:
        return None
    if settings.workspaces.public_url:
        return settings.workspaces.public_url.rstrip("/")
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    return f"{_scheme(scope)}://{request_host(conn, settings)}:{port}"


def portal_origin(conn: HTTPConnection | Scope, settings: Settings) -> str:
    """Where the browser reaches the portal, on the host it came in on."""
    if settings.public_url:
        return settings.resolved_public_url
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    return f"{_scheme(scope)}://{request_host(conn, settings)}:{settings.port}"


def workspace_link(conn: HTTPConnection, settings: Settings, path: str) -> str:
    """``path`` (``/workspaces/<id>/…``) as the browser must open it."""
    origin = workspace_origin(conn, settings)
    return f"{origin}{path}" if origin else path


def on_workspace_port(scope: Scope, settings: Settings) -> bool:
    """Whether the request came in on the workspace port's socket."""
    port = settings.workspace_port
    server = scope.get("server") or (None, None)
    return port is not None and server[1] == port
