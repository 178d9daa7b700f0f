"""Who may pass the workspace proxy, and where their requests go.

The proxy accepts ``Authorization: Bearer <token>`` (a personal token, or the identity
provider's access token) or a session cookie:
on the workspaces' own port the workspace host's cookie (handed over from the
portal, :mod:`balsam.domain.identity.handover`), on a shared origin the portal's
session cookie. Who passes is the domain's decision
(:class:`balsam.domain.workspaces.access.WorkspaceAccess`): the workspace's owner
(all project members when ``workspaces.members_may_open``); admins do not.

Cookie-authenticated requests are forgeable cross-site, so for them:

* WebSocket upgrades must come from Balsam's own origin (``Origin`` header):
  a page elsewhere cannot open a kernel socket with the user's cookie.
* Unsafe HTTP methods must be same-origin (``Origin``, or ``Sec-Fetch-Site``).

Decisions are cached for a few seconds per credential and workspace, so a
page load of many files costs one database lookup; revocation, locking and
stopping take effect within that time (and stopping ends the server anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

from balsam.context import AppContext
from balsam.domain.identity.handover import WorkspaceSessions
from balsam.domain.identity.service import Actor, IdentityService, sha256
from balsam.domain.workspaces.access import WorkspaceAccess, WorkspaceNotRunning
from balsam.errors import BalsamError, Forbidden, Unauthenticated
from balsam.providers.workspaces.base import Endpoint
from balsam.web.cookies import session_cookie
from balsam.web.deps import bearer_actor, client_address, same_origin_request
from balsam.web.origins import on_workspace_port

CACHE_SECONDS = 5.0
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: A personal API token, the portal's session cookie (workspaces on a shared
#: origin), or the workspace host's cookie.
Kind = Literal["token", "session", "workspace"]


@dataclass(frozen=True)
class Passage:
    username: str
    endpoint: Endpoint


class ProxyAccess:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        #: (credential digest, workspace, client address) → (expiry, passage)
        self._cache: dict[tuple[str, str, str], tuple[float, Passage]] = {}
        #: Per user, how to end each WebSocket relayed now.
        self._sockets: dict[str, set[Callable[[], None]]] = {}
        self._lock = threading.Lock()

    def _credential(self, conn: HTTPConnection) -> tuple[str, Kind] | None:
        """``(secret, kind)`` or None."""
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "token"
        auth = self.ctx.settings.auth
        if on_workspace_port(conn.scope, self.ctx.settings):
            cookie = session_cookie(conn, auth.workspace_cookie_name)
            return (cookie, "workspace") if cookie else None
        cookie = session_cookie(conn, auth.cookie_name)
        return (cookie, "session") if cookie else None

    def same_origin(self, conn: HTTPConnection) -> bool:
        """A browser's request from Balsam's own pages (no header-less exception: a
        cookie here comes from a browser)."""
        return same_origin_request(conn, self.ctx.settings.resolved_public_url, script_ok=False)

    def peek(
        self, conn: HTTPConnection, workspace_id: str, *, websocket: bool, method: str = "GET"
    ) -> Passage | None:
        """The cached passage, or None when the database must decide (:meth:`check`).
        Raises Unauthenticated / Forbidden for what needs no database. Non-blocking."""
        credential = self._credential(conn)
        if credential is None:
            raise Unauthenticated("Log in to open this workspace.")
        secret, kind = credential
        if kind != "token" and (websocket or method not in SAFE) and not self.same_origin(conn):
            raise Forbidden("Cross-site request refused.")
        with self._lock:
            hit = self._cache.get((sha256(secret), workspace_id, client_address(conn)))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def check(
        self, conn: HTTPConnection, workspace_id: str, *, websocket: bool, method: str = "GET"
    ) -> Passage:
        """The passage for this request, or raise Unauthenticated (401), Forbidden
        (403), NotFound (404) or NotRunning (503). Blocking: call from a thread."""
        cached = self.peek(conn, workspace_id, websocket=websocket, method=method)
        return cached if cached is not None else self.decide(conn, workspace_id)

    def decide(self, conn: HTTPConnection, workspace_id: str) -> Passage:
        """Ask the database (after :meth:`peek` found nothing) and cache the answer."""
        secret, kind = self._credential(conn)  # type: ignore[misc]
        # Where it comes from is part of the question (a session is bound to the local
        # browser that logged in), and so part of the cached answer's key.
        address = client_address(conn)
        passage = self._decide(secret, kind, workspace_id, address)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(sha256(secret), workspace_id, address)] = (
                time.monotonic() + CACHE_SECONDS,
                passage,
            )
        return passage

    def forget_credential(self, secret: str) -> None:
        """Drop cached decisions for a credential (logout, token revoked)."""
        digest = sha256(secret)
        with self._lock:
            for key in [k for k in self._cache if k[0] == digest]:
                del self._cache[key]

    def forget_user(self, username: str) -> None:
        """Drop cached decisions for a user's requests and close the user's open
        WebSockets (a login session ended: the workspace sessions handed over from it
        ended too; JupyterLab reconnects the sockets of sessions still live)."""
        with self._lock:
            for key in [k for k, v in self._cache.items() if v[1].username == username]:
                del self._cache[key]
            ends = list(self._sockets.get(username, ()))
        for end in ends:
            end()

    @contextlib.contextmanager
    def open_socket(self, username: str) -> Iterator[asyncio.Event]:
        """While a WebSocket of ``username``'s is relayed: an event set when
        :meth:`forget_user` ends it (from any thread)."""
        ended = asyncio.Event()
        loop = asyncio.get_running_loop()

        def end() -> None:
            loop.call_soon_threadsafe(ended.set)

        with self._lock:
            self._sockets.setdefault(username, set()).add(end)
        try:
            yield ended
        finally:
            with self._lock:
                ends = self._sockets.get(username, set())
                ends.discard(end)
                if not ends:
                    self._sockets.pop(username, None)

    def forget(self, workspace_id: str) -> None:
        """Drop cached decisions for a workspace (stopped, locked, deleted)."""
        with self._lock:
            for key in [k for k in self._cache if k[1] == workspace_id]:
                del self._cache[key]

    def _decide(self, secret: str, kind: Kind, workspace_id: str, address: str) -> Passage:
        identity = IdentityService(self.ctx)
        if kind == "token":
            actor = bearer_actor(self.ctx, secret)
        else:
            user = (
                WorkspaceSessions(self.ctx).authenticate(secret, address)
                if kind == "workspace"
                else identity.authenticate_session(secret, address)[0]
            )
            actor = Actor(user_id=user.id, username=user.username, is_admin=user.is_admin)
        return Passage(actor.username, WorkspaceAccess(self.ctx).open(actor, workspace_id))


def refusal(exc: BalsamError) -> tuple[int, str, dict[str, str]]:
    starting = isinstance(exc, WorkspaceNotRunning) and exc.details.get("starting")
    headers = {"Retry-After": "2"} if starting else {}
    return exc.status, exc.message, headers
