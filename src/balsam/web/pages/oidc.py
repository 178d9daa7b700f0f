"""Sign-in with the organisation's identity provider (OpenID Connect), for the portal
and, through the portal's hand-over, the workspaces.

``GET /login/oidc?next=…`` sends the browser to the provider (authorization code flow
with PKCE S256, a ``state`` and a ``nonce``); ``GET /login/oidc/callback`` redeems the
code, checks the ID token, and starts a Balsam session. What the callback needs (state,
nonce, PKCE verifier, where to go next) travels in a short-lived HttpOnly cookie of
this browser, never on the server or in a URL: only the browser that started a sign-in
can finish it (a code and state carried to another browser find no cookie there), and
a restart or another replica of Balsam finishes it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from balsam.domain.identity.external import ExternalIdentityService, ProviderAccount, account_of
from balsam.domain.identity.service import IdentityService
from balsam.errors import BalsamError
from balsam.providers.identity.base import ProviderUnavailable, TokenRefused
from balsam.settings import AuthSettings
from balsam.web.deps import client_address, get_ctx, request_id, set_session_cookie
from balsam.web.origins import portal_origin
from balsam.web.pages import i18n
from balsam.web.pages.forms import NextQuery, read_form, refuse_scripts, safe_next
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

CALLBACK_PATH = "/login/oidc/callback"
LOGGED_OUT_PATH = "/logged-out"
BACKCHANNEL_PATH = "/login/oidc/backchannel-logout"
#: How long a sign-in at the provider may take.
PENDING_SECONDS = 600
_PARAM = Annotated[str, Query(max_length=4096)]


@dataclass(frozen=True)
class Pending:
    """A sign-in begun in this browser."""

    state: str
    nonce: str
    verifier: str
    next_path: str
    redirect_uri: str

    def encode(self) -> str:
        fields = [self.state, self.nonce, self.verifier, self.next_path, self.redirect_uri]
        return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()

    @classmethod
    def decode(cls, value: str) -> Pending | None:
        try:
            fields = json.loads(base64.urlsafe_b64decode(value.encode()))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(fields, list) or len(fields) != 5:
            return None
        if not all(isinstance(field, str) for field in fields):
            return None
        return cls(*fields)


def pending_cookie(auth: AuthSettings) -> str:
    """The cookie of a sign-in under way (``__Host-`` when cookies are Secure, so no
    other host — a workspace's neither — can plant one)."""
    return f"{auth.cookie_name}_oidc"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _failed(request: Request, error: str, *, status: int) -> HTMLResponse:
    """The login page with ``error``; the pending sign-in is forgotten."""
    ctx = get_ctx(request)
    response = render(
        request,
        "login.html",
        status=status,
        next_path="/",
        error=error,
        username="",
        opens_workspace=False,
        oidc=ctx.settings.oidc,
    )
    response.delete_cookie(
        pending_cookie(ctx.settings.auth), path="/", secure=ctx.settings.auth.cookie_secure
    )
    return response


@router.get("/login/oidc")
async def begin(request: Request, next_path: NextQuery = None) -> Response:
    """Send the browser to the identity provider to sign in, then to ``next``."""
    ctx = get_ctx(request)
    refuse_scripts(request)
    service = ExternalIdentityService(ctx)  # 404 while none is configured
    _ = i18n.gettext(request)
    address = client_address(request)
    try:
        IdentityService(ctx).check_browser_peer(address)
    except BalsamError:
        return _failed(request, _("A workspace cannot sign in to the portal."), status=403)
    pending = Pending(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),
        next_path=safe_next(next_path),
        redirect_uri=portal_origin(request, ctx.settings) + CALLBACK_PATH,
    )
    try:
        url = await run_in_threadpool(
            service.provider.authorization_url,
            redirect_uri=pending.redirect_uri,
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=_challenge(pending.verifier),
        )
    except ProviderUnavailable:
        return _failed(request, _("The identity provider cannot be reached."), status=502)
    response = RedirectResponse(url, status_code=303)
    auth = ctx.settings.auth
    set_session_cookie(response, auth, pending_cookie(auth), pending.encode(), PENDING_SECONDS)
    return response


@router.get(CALLBACK_PATH)
async def callback(
    request: Request,
    code: _PARAM = "",
    state: _PARAM = "",
    error: _PARAM = "",
) -> Response:
    """Finish a sign-in begun in this browser: a Balsam session and ``next``, or the
    login page naming what went wrong (the refusal is audited)."""
    ctx = get_ctx(request)
    refuse_scripts(request)
    service = ExternalIdentityService(ctx)
    _ = i18n.gettext(request)
    auth = ctx.settings.auth
    pending = Pending.decode(request.cookies.get(pending_cookie(auth), ""))
    address, rid = client_address(request), request_id(request)
    try:  # a workspace cannot finish one either (with a code and cookie it got hold of)
        IdentityService(ctx).check_browser_peer(address)
    except BalsamError:
        return _failed(request, _("A workspace cannot sign in to the portal."), status=403)
    if pending is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
        return _failed(
            request,
            _("The sign-in expired or was begun in another browser; sign in again."),
            status=400,
        )
    if error or not code:
        why = f"provider: {error or 'no code'}"
        await run_in_threadpool(service.refuse_sign_in, why, address=address, request_id=rid)
        return _failed(request, _("The identity provider did not sign you in."), status=401)
    try:
        account, sid = await run_in_threadpool(_account, service, pending, code)
        user = await run_in_threadpool(service.sign_in, account, address=address, request_id=rid)
        value, _row = await run_in_threadpool(
            partial(IdentityService(ctx).start_session, provider_sid=sid),
            user,
            address=address,
            via="oidc",
        )
    except (TokenRefused, ProviderUnavailable) as refused:
        await run_in_threadpool(
            service.refuse_sign_in, str(refused), address=address, request_id=rid
        )
        return _failed(request, _("The identity provider's answer was refused."), status=401)
    except BalsamError as refused:
        await run_in_threadpool(
            service.refuse_sign_in, refused.message, address=address, request_id=rid
        )
        return _failed(request, i18n.message_of(request, refused), status=403)
    response = RedirectResponse(pending.next_path, status_code=303)
    response.delete_cookie(pending_cookie(auth), path="/", secure=auth.cookie_secure)
    set_session_cookie(response, auth, auth.cookie_name, value, auth.session_ttl_hours * 3600)
    return response


def _account(
    service: ExternalIdentityService, pending: Pending, code: str
) -> tuple[ProviderAccount, str | None]:
    """The account of a redeemed code — the ID token's claims, completed from the
    userinfo endpoint when they lack the user name or the groups — and the provider's
    session id (``sid``), if it gave one."""
    provider = service.provider
    tokens = provider.redeem(
        code=code, redirect_uri=pending.redirect_uri, code_verifier=pending.verifier
    )
    claims = dict(provider.verify_id_token(tokens.id_token, nonce=pending.nonce))
    account = account_of(claims, service.settings)
    if not account.username or account.groups is None:
        info = provider.userinfo(tokens.access_token)
        if info.get("sub") == claims["sub"]:
            account = account_of({**info, **claims}, service.settings)
    sid = claims.get("sid")
    return account, sid if isinstance(sid, str) and len(sid) <= 255 else None


@router.post(BACKCHANNEL_PATH)
async def backchannel_logout(request: Request) -> Response:
    """The provider's back-channel logout (OpenID Connect Back-Channel Logout 1.0): a
    signed logout token, posted by the provider's server when a person signs out there
    (from another application, say), ends their Balsam sessions begun through it, and
    the workspaces' access with them. No cookie, no CSRF token: the token is the proof."""
    ctx = get_ctx(request)
    service = ExternalIdentityService(ctx)
    form = await read_form(request)
    headers = {"Cache-Control": "no-store"}
    try:
        names = await run_in_threadpool(
            service.log_out, form.get("logout_token", ""), request_id=request_id(request)
        )
    except (TokenRefused, ProviderUnavailable) as refused:
        body = {"error": "invalid_request", "error_description": str(refused)}
        return JSONResponse(body, status_code=400, headers=headers)
    for username in names:
        request.app.state.proxy_access.forget_user(username)
    return Response(status_code=200, headers=headers)


@router.get(LOGGED_OUT_PATH)
def logged_out(request: Request) -> HTMLResponse:
    """Where the identity provider sends the browser after signing out there too."""
    refuse_scripts(request)
    return render(request, "logged_out.html")
