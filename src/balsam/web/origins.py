"""Each workspace on a site of its own.

JupyterLab runs code its user (or a notebook someone else wrote) chose; scripts in
its pages run with the page's origin. Served on the portal's origin, such a script
could read portal pages and the JSON API as that user; served on one origin shared
by every workspace, a script in one workspace's page could read and drive every
other workspace the browser has opened, another user's included once a page on
another port of that host name has planted cookies there (cookies belong to a host
name, not to a port). So Balsam serves workspaces on a port of their own
(``Settings.workspace_port``) and each workspace under a host name of its own:
on one machine the portal is ``localhost`` and workspace ``w`` is ``w.localhost``
(browsers resolve every ``*.localhost`` to loopback, and each such name is a site
of its own to them); elsewhere ``workspaces.public_url`` names the pattern,
``https://*.ws.example.org``, which production requires. A workspace's host has
its own cookie, handed over from the portal by a one-time ticket
(:mod:`balsam.web.pages.handover`); :mod:`balsam.web.origin_split` keeps each kind
of request on its port and each workspace's pages on its host name.

A ``workspaces.public_url`` without ``*`` serves every workspace under one host
name (a known limit, see docs/security.md; production refuses it).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

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


#: Without configured URLs, the portal is ``localhost`` and workspace ``w`` is
#: ``w.localhost``: one machine, a site for each.
LOOPBACK_PORTAL, LOOPBACK_WORKSPACES = "localhost", "*.localhost"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: A host-name pattern's first label when each workspace has a host name of its own.
WILDCARD = "*."
#: A workspace id as a host name's first label (ids are made so: see the service).
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


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


def workspace_hosts(settings: Settings) -> str | None:
    """The host name workspaces are served under, as a pattern: ``*.<domain>`` (each
    workspace ``<id>.<domain>``), one name shared by all (a ``workspaces.public_url``
    without ``*``), or None: they share the portal's origin (``workspaces.port`` 0),
    or come under any name typed (the portal is not on loopback and no
    ``workspaces.public_url`` is set: a known limit, see docs/security.md)."""
    if settings.workspace_port is None:
        return None
    if settings.workspaces.public_url:
        return _hostname(settings.workspaces.public_url)
    if settings.public_url:
        return LOOPBACK_WORKSPACES if _hostname(settings.public_url) in _LOOPBACK else None
    # Bound to loopback: the browser is on this machine. Bound to the network (and no
    # URLs configured): users come by a name Balsam cannot know.
    return LOOPBACK_WORKSPACES if settings.host in _LOOPBACK else None


def workspace_id_of(path: str) -> str | None:
    """The workspace id of a ``/workspaces/<id>/…`` path when it can be a host
    name's label, else None (``-``, the hand-over's, is none)."""
    if not path.startswith(WORKSPACE_PREFIX):
        return None
    found = path[len(WORKSPACE_PREFIX) :].split("/", 1)[0]
    return found if _LABEL.match(found) else None


def workspace_host(settings: Settings, workspace_id: str) -> str | None:
    """The host name workspace ``workspace_id`` is served under (see
    :func:`workspace_hosts`), or None: any name typed, or the portal's origin."""
    pattern = workspace_hosts(settings)
    if pattern is None or not pattern.startswith(WILDCARD):
        return pattern
    return workspace_id + pattern[1:]


def hosts_workspace(settings: Settings, host: str, workspace_id: str) -> bool:
    """Whether workspace ``workspace_id`` is served under ``host`` (any host when
    workspaces come under the name typed or share the portal's origin)."""
    expected = workspace_host(settings, workspace_id)
    return expected is None or expected == host


def is_workspace_host(settings: Settings, host: str) -> bool:
    """Whether ``host`` is a workspace's host name (one of the pattern's)."""
    pattern = workspace_hosts(settings)
    if pattern is None:
        return False
    if not pattern.startswith(WILDCARD):
        return host == pattern
    label, dot, rest = host.partition(".")
    return bool(dot) and "." + rest == pattern[1:] and bool(_LABEL.match(label))


def portal_host(settings: Settings) -> str | None:
    """The host name the portal's pages are served under, or None: any typed."""
    if settings.public_url:
        return _hostname(settings.public_url)
    return LOOPBACK_PORTAL if workspace_hosts(settings) == LOOPBACK_WORKSPACES else None


def portal_elsewhere(settings: Settings, host: str) -> bool:
    """Whether a portal page asked for under ``host`` belongs under the portal's own
    name: ``host`` is a workspace's, or the other loopback name of one machine."""
    portal = portal_host(settings)
    if portal is None or host == portal:
        return False
    return is_workspace_host(settings, host) or (portal in _LOOPBACK and host in _LOOPBACK)


def _scheme(scope: Scope) -> str:
    return "https" if scope.get("scheme") in ("https", "wss") else "http"


def workspace_origin(
    conn: HTTPConnection | Scope, settings: Settings, workspace_id: str
) -> str | None:
    """Where the browser reaches workspace ``workspace_id`` (scheme, host, port), or
    None when workspaces share the portal's origin. ``"*"`` gives the pattern of them
    all (a Content-Security-Policy source)."""
    port = settings.workspace_port
    if port is None:
        return None
    if settings.workspaces.public_url:
        return settings.workspaces.public_url.rstrip("/").replace("://*.", f"://{workspace_id}.", 1)
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    host = workspace_host(settings, workspace_id) or request_host(conn, settings)
    return f"{_scheme(scope)}://{host}:{port}"


def portal_origin(conn: HTTPConnection | Scope, settings: Settings) -> str:
    """Where the browser reaches the portal: the host it came in on, unless that
    is a workspace's (or it came in on their port): then the portal's host."""
    if settings.public_url:
        return settings.resolved_public_url
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    host = request_host(conn, settings)
    if on_workspace_port(scope, settings) or portal_elsewhere(settings, host.lower()):
        host = portal_host(settings) or host
    return f"{_scheme(scope)}://{host}:{settings.port}"


def workspace_link(conn: HTTPConnection, settings: Settings, path: str) -> str:
    """``path`` (``/workspaces/<id>/…``) as the browser must open it."""
    workspace_id = workspace_id_of(path)
    origin = workspace_origin(conn, settings, workspace_id) if workspace_id else None
    return f"{origin}{path}" if origin else path


def opening_link(conn: HTTPConnection, settings: Settings, path: str) -> str:
    """A portal page's link that opens ``path`` (``/workspaces/<id>/…``): through the
    portal's hand-over, so the workspace's host gets a fresh session of this user
    whatever cookie a page on another port of that name may have planted there; the
    path itself when workspaces share the portal's origin."""
    if settings.workspace_port is None or workspace_id_of(path) is None:
        return path
    return f"{HANDOVER_PATH}?{urlencode({'next': path})}"


def on_workspace_port(scope: Scope, settings: Settings) -> bool:
    """Whether the request came in on the workspace port's socket."""
    port = settings.workspace_port
    server = scope.get("server") or (None, None)
    return port is not None and server[1] == port
