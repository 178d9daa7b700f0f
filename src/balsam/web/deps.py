"""FastAPI dependencies: the app context and the authenticated actor.

API calls authenticate with ``Authorization: Bearer <token>`` or the portal's
session cookie. Cookie-authenticated writes must carry the session's CSRF
token in ``X-CSRF-Token`` (a token in a header cannot be forged cross-site).
HTTP Basic (username + password) is accepted only where a route asks for
:func:`actor_with_basic` (minting a first token from a script).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request, Response
from starlette.requests import HTTPConnection

from balsam.context import AppContext
from balsam.domain.health.service import CheckRunner
from balsam.domain.identity.external import ExternalIdentityService, GroupsReader
from balsam.domain.identity.service import Actor, IdentityService
from balsam.domain.library.sync import LibrarySyncer
from balsam.domain.library.worker import LibrarySyncWorker
from balsam.errors import N_, BalsamError, Forbidden, InvalidInput, Unauthenticated
from balsam.settings import AuthSettings
from balsam.web.cookies import session_cookie
from balsam.web.origins import url_origin
from balsam.web.peers import peer_address

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

log = logging.getLogger(__name__)


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def health_runner(request: Request) -> CheckRunner:
    """The app's one runner of health checks (one in-flight check per component)."""
    state = request.app.state
    runner: CheckRunner | None = getattr(state, "health_checks", None)
    if runner is None:
        runner = state.health_checks = CheckRunner()
    return runner


def library_sync_running(request: Request) -> bool:
    """Whether the knowledge-library sync worker of the served app runs."""
    worker = getattr(request.app.state, "library_sync", None)
    return bool(worker is not None and worker.running)


def queue_sync(
    request: Request, background: BackgroundTasks, ctx: AppContext, library_id: str
) -> None:
    """Hand the sync to the app's worker, or run it after the response."""
    worker = getattr(request.app.state, "library_sync", None)
    if isinstance(worker, LibrarySyncWorker) and worker.running:
        worker.submit(library_id)
    else:
        background.add_task(_sync_after_response, ctx, library_id)


def _sync_after_response(ctx: AppContext, library_id: str) -> None:
    try:
        LibrarySyncer(ctx).sync_now(library_id)
    except BalsamError:
        log.warning("library %s could not be synced", library_id, exc_info=True)


def client_address(request: HTTPConnection) -> str:
    """The client's address for rate limits and the audit trail: its IP, or
    ``uid:<n>`` for a local process of another user (a workspace) on loopback
    (see :mod:`balsam.web.peers`); looked up once per request."""
    cached = getattr(request.state, "client_address", None)
    if isinstance(cached, str):
        return cached
    address = "unknown"
    if request.client:
        address = peer_address(
            (request.client.host, request.client.port), request.scope.get("server")
        )
    request.state.client_address = address
    return address


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def _actor(request: Request, user_id: int, username: str, is_admin: bool) -> Actor:
    return Actor(
        user_id=user_id,
        username=username,
        is_admin=is_admin,
        request_id=request_id(request),
        address=client_address(request),
    )


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _scheme(request: Request) -> str:
    return request.headers.get("authorization", "").partition(" ")[0].lower()


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(username, secret)`` from HTTP Basic; None when absent, malformed,
    empty or holding a NUL character."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not (sep and username and secret) or "\x00" in username + secret:
        return None
    return username, secret


def authenticate(request: Request, ctx: AppContext, *, allow_basic: bool = False) -> Actor:
    """Resolve the caller or raise Unauthenticated / Forbidden (CSRF)."""
    identity = IdentityService(ctx)
    token = _bearer(request)
    if token is not None:
        found = bearer_actor(ctx, token, request_id=request_id(request))
        return _actor(request, found.user_id, found.username, found.is_admin)
    if _scheme(request) == "basic":
        if not allow_basic:
            raise Unauthenticated("Use a bearer token for this call.")
        basic = basic_credentials(request)
        if basic is None:
            raise Unauthenticated("Malformed basic credentials.")
        user = identity.login_password(
            basic[0], basic[1], address=client_address(request), request_id=request_id(request)
        )
        return _actor(request, user.id, user.username, user.is_admin)
    cookie = session_cookie(request, ctx.settings.auth.cookie_name)
    if cookie:
        if request.headers.get("origin") is not None and not same_origin_request(
            request, ctx.settings.resolved_public_url
        ):
            # Another origin's script (even one CORS lets in): the cookie is for
            # Balsam's own pages. Links followed from elsewhere send no Origin.
            raise Forbidden("From another origin, send a bearer token.")
        user, session = identity.authenticate_session(cookie, client_address(request))
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise Forbidden("Missing or wrong X-CSRF-Token header.")
        return _actor(request, user.id, user.username, user.is_admin)
    raise Unauthenticated("Authentication required.")


def is_provider_token(token: str, ctx: AppContext) -> bool:
    """Whether a bearer token is for the identity provider to vouch for: a JWT (three
    dot-separated parts) while OpenID Connect is configured. Balsam's own tokens
    (``blsm_…``) never are."""
    return ctx.settings.oidc.enabled and token.count(".") == 2 and token.startswith("eyJ")


def bearer_actor(ctx: AppContext, token: str, *, request_id: str = "") -> Actor:
    """The user of a bearer token: a personal token (``blsm_…``), or the identity
    provider's access token (:func:`is_provider_token`); Unauthenticated otherwise."""
    if is_provider_token(token, ctx):
        service = ExternalIdentityService(ctx)
        claims = service.token_claims(token)
        user = service.user_for_token(token, claims, request_id=request_id)
    else:
        user = IdentityService(ctx).authenticate_token(token)
    return Actor(user_id=user.id, username=user.username, is_admin=user.is_admin)


def provider_groups_reader(request: Request, ctx: Ctx) -> GroupsReader:
    """Who asks for a user's project groups: the provider's service account (its
    client-credentials token, its client in ``oidc.groups_clients``), or a user."""
    token = _bearer(request)
    if token is not None and is_provider_token(token, ctx):
        service = ExternalIdentityService(ctx)
        claims = service.token_claims(token, service=True)
        client = service.service_client(claims)
        if client is not None:
            return GroupsReader(service_client=client)
    return GroupsReader(actor=current_actor(request, ctx))


def same_origin_request(conn: HTTPConnection, public_url: str, *, script_ok: bool = True) -> bool:
    """Whether a browser sent this (a request or a WebSocket upgrade) from one of
    Balsam's own pages (``Origin`` the request's own or the public URL's;
    ``Sec-Fetch-Site`` same-origin or none), or, when ``script_ok``, no browser page
    sent it at all (neither header: a script outside a browser)."""
    origin = conn.headers.get("origin")
    if origin is None:
        fetch_site = conn.headers.get("sec-fetch-site")
        return fetch_site in ("same-origin", "none") or (fetch_site is None and script_ok)
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    own = {f"{scheme}://{conn.headers.get('host', '')}".lower(), url_origin(public_url)}
    return origin.lower() in own


def browser_session(request: Request, ctx: AppContext) -> tuple[Actor, str] | None:
    """The user of the browser's session cookie alone and the session's CSRF token,
    or None: for the portal's pages and forms, which must not act on a bearer token
    (their cross-site and CSRF checks are the caller's)."""
    cookie = session_cookie(request, ctx.settings.auth.cookie_name)
    if not cookie:
        return None
    try:
        user, session = IdentityService(ctx).authenticate_session(cookie, client_address(request))
    except BalsamError:
        return None
    return _actor(request, user.id, user.username, user.is_admin), session.csrf_token


def session_actor(request: Request, ctx: AppContext) -> Actor | None:
    """The user of the browser's session cookie alone, or None (see
    :func:`browser_session`)."""
    found = browser_session(request, ctx)
    return found[0] if found else None


def refuse_nul_characters(request: Request) -> None:
    """Refuse NUL in path and query parameters (PostgreSQL cannot compare them)."""
    values = [
        *request.path_params.values(),
        *request.query_params.keys(),
        *request.query_params.values(),
    ]
    if any("\x00" in str(v) for v in values):
        raise InvalidInput("Path and query parameters must not contain NUL characters.")


def current_actor(request: Request, ctx: Ctx) -> Actor:
    actor = authenticate(request, ctx)
    request.state.actor = actor
    return actor


def actor_with_basic(request: Request, ctx: Ctx) -> Actor:
    actor = authenticate(request, ctx, allow_basic=True)
    request.state.actor = actor
    return actor


def admin_actor(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden(N_("Administrators only."))
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]
BasicOrActor = Annotated[Actor, Depends(actor_with_basic)]
AdminActor = Annotated[Actor, Depends(admin_actor)]


def set_session_cookie(
    response: Response, auth: AuthSettings, name: str, value: str, max_age: int
) -> None:
    """Set a session cookie (the portal's or the workspace host's): HttpOnly, Lax,
    the whole host (a ``__Host-`` cookie must have path /), Secure when configured."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=auth.cookie_secure,
        path="/",
    )


def clear_session_cookie(response: Response, auth: AuthSettings) -> None:
    """Delete the portal's session cookie: with the attributes it was set with (a
    browser keeps a ``__Host-`` cookie that a deletion without ``Secure`` names)."""
    response.delete_cookie(
        auth.cookie_name, path="/", httponly=True, samesite="lax", secure=auth.cookie_secure
    )


def forget_session(request: Request, cookie: str, username: str | None) -> None:
    """After a logout: the proxy's cached decisions for the session, and for the
    workspace host's sessions handed over from it, go at once (no 5 s grace)."""
    access = request.app.state.proxy_access
    access.forget_credential(cookie)
    if username is not None:
        access.forget_user(username)
