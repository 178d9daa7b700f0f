"""Workspaces on a site of their own.

JupyterLab runs code its user (or a notebook someone else wrote) chose; scripts in
its pages run with the page's origin. Served on the portal's origin, such a script
could read portal pages and the JSON API as that user. So Balsam serves workspaces
on another port (``Settings.workspace_port``), and the browser keeps the two origins
apart (no reads across them without CORS, which Balsam never grants).

Another port alone is not enough: cookies belong to a host name, not to a port, so
a script on the workspace port could still flood the browser's cookie jar until it
drops the portal's session cookie and then set one of its own (the portal would
then act as another account: login CSRF). The workspaces are therefore served on
another *host name* as well, and each host name keeps to its kind: on one machine
the portal is ``localhost`` and the workspaces ``127.0.0.1`` (two sites to a
browser; :mod:`balsam.web.origin_split` sends a page asked for under the other
name over), elsewhere ``workspaces.public_url``, which production requires on a
host of its own. The workspace host has its own cookie,
handed over from the portal by a one-time ticket (:mod:`balsam.web.pages.handover`).
:mod:`balsam.web.origin_split` keeps each kind of request on its port.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Scope

from balsam.settings import Settings, url_host

WORKSPACE_PREFIX = "/workspaces/"
#: The portal's page that hands its session over to the workspaces' host ...
HANDOVER_PATH = "/workspace-session"
#: ... and where it posts the ticket, on the workspaces' host (no workspace id has
#: a ``-`` of its own).
ENTER_PATH = "/workspaces/-/session"
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


#: Without configured URLs, the portal is ``localhost`` and the workspaces are
#: ``127.0.0.1``: one machine, two sites to a browser.
LOOPBACK_PORTAL, LOOPBACK_WORKSPACES = "localhost", "127.0.0.1"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: A portal configured under one loopback name has its workspaces under another.
_OTHER_LOOPBACK = {"localhost": "127.0.0.1", "127.0.0.1": "localhost", "[::1]": "127.0.0.1"}


def _hostname(url: str) -> str:
    host = url_host(url)
    return f"[{host}]" if ":" in host else host  # as request_host writes IPv6


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` as a browser's ``Origin`` header writes it
    (lower case, no default port, no path)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{_hostname(url)}{port}"


def workspace_host(settings: Settings) -> str | None:
    """The one host name workspaces are served under, or None: they share the portal's
    origin (``workspaces.port`` 0), or come under any name the user typed (the portal
    is not on loopback and no ``workspaces.public_url`` names a host of their own: a
    known limit, see docs/security.md)."""
    if settings.workspace_port is None:
        return None
    if settings.workspaces.public_url:
        return _hostname(settings.workspaces.public_url)
    if settings.public_url:  # a loopback name: the other one
        return _OTHER_LOOPBACK.get(_hostname(settings.public_url))
    # Bound to loopback: the browser is on this machine. Bound to the network (and no
    # URLs configured): users come by a name Balsam cannot know.
    return LOOPBACK_WORKSPACES if settings.host in _LOOPBACK else None


def portal_host(settings: Settings) -> str | None:
    """The host name the portal's pages are served under, or None: any typed."""
    if settings.public_url:
        return _hostname(settings.public_url)
    return LOOPBACK_PORTAL if workspace_host(settings) == LOOPBACK_WORKSPACES else None


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
    host = workspace_host(settings) or request_host(conn, settings)
    return f"{_scheme(scope)}://{host}:{port}"


def portal_origin(conn: HTTPConnection | Scope, settings: Settings) -> str:
    """Where the browser reaches the portal: the host it came in on, unless that
    is the workspaces' (or it came in on their port): then the portal's host."""
    if settings.public_url:
        return settings.resolved_public_url
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    host = request_host(conn, settings)
    if on_workspace_port(scope, settings) or host.lower() == workspace_host(settings):
        host = portal_host(settings) or host
    return f"{_scheme(scope)}://{host}:{settings.port}"


def workspace_link(conn: HTTPConnection, settings: Settings, path: str) -> str:
    """``path`` (``/workspaces/<id>/…``) as the browser must open it."""
    origin = workspace_origin(conn, settings)
    return f"{origin}{path}" if origin else path


def on_workspace_port(scope: Scope, settings: Settings) -> bool:
    """Whether the request came in on the workspace port's socket."""
    port = settings.workspace_port
    server = scope.get("server") or (None, None)
    return port is not None and server[1] == port
