"""Sign-in with the organisation's identity provider (OpenID Connect), for the portal
and, through the portal's hand-over, the workspaces.

``GET /login/oidc?next=…`` sends the browser to the provider (authorization code flow
with PKCE S256, a ``state`` and a ``nonce``); ``GET /login/oidc/callback`` redeems the
code, checks the ID token, and starts a Balsam session. What the callback needs (state,
where to go next, the client address that began it) travels in a short-lived HttpOnly
cookie of this browser, signed with a key of Balsam's (HMAC), never in a URL and never
in the database; the nonce and the PKCE verifier are made from the state with that key
and are in no cookie (a server on another port of the portal's host name receives the
browser's cookies): only the browser that began a sign-in finishes it —
a code and state carried elsewhere find no cookie there, and a cookie planted from
elsewhere (a server on another port of the portal's host name receives and sets the
same cookies) is either not Balsam's or names another address. A restart, or another
replica sharing the data directory, finishes it too. Up to three sign-ins may be under
way in one browser (tabs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import astuple, dataclass
from functools import partial
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.external import ExternalIdentityService, ProviderAccount, account_of
from balsam.domain.identity.service import IdentityService
from balsam.errors import BalsamError
from balsam.private_files import create_once
from balsam.providers.identity.base import ProviderUnavailable, TokenRefused
from balsam.web.deps import client_address, get_ctx, request_id, set_session_cookie
from balsam.web.origins import portal_origin
from balsam.web.pages import i18n
from balsam.web.pages.auth import login_page
from balsam.web.pages.forms import (
    LOGGED_OUT_PATH,
    OIDC_LOGIN_PATH,
    NextQuery,
    read_form,
    refuse_scripts,
    safe_next,
)
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

CALLBACK_PATH = f"{OIDC_LOGIN_PATH}/callback"
BACKCHANNEL_PATH = f"{OIDC_LOGIN_PATH}/backchannel-logout"
#: How long a sign-in at the provider may take, and how many may be under way at once
#: in one browser (tabs).
PENDING_SECONDS = 600
MAX_PENDING = 3
_PARAM = Annotated[str, Query(max_length=4096)]


@dataclass(frozen=True)
class Pending:
    """A sign-in begun in this browser, from ``address`` (:func:`client_address`), at
    ``began`` (seconds since the epoch)."""

    state: str
    next_path: str
    redirect_uri: str
    address: str
    began: int

    @property
    def live(self) -> bool:
        return 0 <= time.time() - self.began < PENDING_SECONDS


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def derived(key: bytes, purpose: str, state: str) -> str:
    """The sign-in's nonce or PKCE verifier (``purpose``): made from its state with
    Balsam's key, never written into the cookie — a server on another port of the
    portal's host name receives the browser's cookies and could read them there."""
    return _mac(key, f"{purpose}\0{state}")


def sign_in_key(ctx: AppContext) -> bytes:
    """The key that signs the sign-in cookie (``secrets/sign-in.key`` in the data
    directory, made at first use; replicas that share the directory share it)."""
    path = ctx.settings.data_dir.resolve() / "secrets" / "sign-in.key"
    key = _KEYS.get(path)
    if key is None:
        create_once(path, secrets.token_hex(32))
        key = _KEYS[path] = path.read_text(encoding="utf-8").strip().encode()
    return key


_KEYS: dict[Path, bytes] = {}


def encode_pending(items: list[Pending], key: bytes) -> str:
    """The cookie's value: the sign-ins as JSON, base64url, and their HMAC-SHA256."""
    data = json.dumps([astuple(p) for p in items]).encode()
    body = base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # nothing a cookie quotes
    return f"{body}.{_mac(key, body)}"


def decode_pending(value: str, key: bytes) -> list[Pending]:
    """The live sign-ins of a cookie Balsam made; none for anything else (a cookie
    planted by someone else cannot name where a sign-in goes, nor whose it is)."""
    body, _, mac = value.rpartition(".")
    expected = _mac(key, body)
    if not body or not hmac.compare_digest(mac.encode(), expected.encode()):
        return []
    try:
        rows = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        items = [Pending(*row) for row in rows]
    except (binascii.Error, ValueError, TypeError):
        return []
    return [item for item in items if item.live]


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _failed(request: Request, error: str, *, status: int) -> HTMLResponse:
    """The login page with ``error`` (its language switch does not carry the callback's
    code on)."""
    return login_page(request, "/", error=error, status=status, here="/login")


def _keep(response: Response, ctx: AppContext, items: list[Pending]) -> Response:
    """``response`` with the sign-in cookie holding ``items`` (deleted when none)."""
    auth = ctx.settings.auth
    name = auth.sign_in_cookie_name
    if items:
        value = encode_pending(items, sign_in_key(ctx))
        set_session_cookie(response, auth, name, value, PENDING_SECONDS)
    else:
        response.delete_cookie(name, path="/", secure=auth.cookie_secure)
    return response


@router.get(OIDC_LOGIN_PATH)
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
    key = sign_in_key(ctx)
    pending = Pending(
        state=secrets.token_urlsafe(24),
        next_path=safe_next(next_path),
        redirect_uri=portal_origin(request, ctx.settings) + CALLBACK_PATH,
        address=address,
        began=int(time.time()),
    )
    # Other sign-ins begun in this browser go on (several workspace tabs at once).
    cookie = request.cookies.get(ctx.settings.auth.sign_in_cookie_name, "")
    under_way = decode_pending(cookie, key)[-(MAX_PENDING - 1) :]
    try:
        url = await run_in_threadpool(
            service.provider.authorization_url,
            redirect_uri=pending.redirect_uri,
            state=pending.state,
            nonce=derived(key, "nonce", pending.state),
            code_challenge=_challenge(derived(key, "pkce", pending.state)),
        )
    except ProviderUnavailable:
        return _failed(request, _("The identity provider cannot be reached."), status=502)
    return _keep(RedirectResponse(url, status_code=303), ctx, [*under_way, pending])


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
    under_way = decode_pending(request.cookies.get(auth.sign_in_cookie_name, ""), sign_in_key(ctx))
    address, rid = client_address(request), request_id(request)
    try:  # a workspace cannot finish one either (with a code and cookie it got hold of)
        IdentityService(ctx).check_browser_peer(address)
    except BalsamError:
        return _failed(request, _("A workspace cannot sign in to the portal."), status=403)
    found = [p for p in under_way if hmac.compare_digest(state.encode(), p.state.encode())]
    # Begun by this browser: from the address that began it (a cookie of someone
    # else's sign-in, planted here, finishes nothing).
    pending = found[0] if found and found[0].address == address else None
    if pending is None:
        return _failed(
            request,
            _("The sign-in expired or was begun in another browser; sign in again."),
            status=400,
        )
    rest = [p for p in under_way if p is not pending]
    if error or not code:
        why = f"provider: {error or 'no code'}"
        await run_in_threadpool(service.refuse_sign_in, why, address=address, request_id=rid)
        failed = _failed(request, _("The identity provider did not sign you in."), status=401)
        return _keep(failed, ctx, rest)
    try:
        account, sid = await run_in_threadpool(_account, service, pending, code, sign_in_key(ctx))
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
        failed = _failed(request, _("The identity provider's answer was refused."), status=401)
        return _keep(failed, ctx, rest)
    except BalsamError as refused:
        await run_in_threadpool(
            service.refuse_sign_in, refused.message, address=address, request_id=rid
        )
        return _keep(_failed(request, i18n.message_of(request, refused), status=403), ctx, rest)
    response = RedirectResponse(safe_next(pending.next_path), status_code=303)
    set_session_cookie(response, auth, auth.cookie_name, value, auth.session_ttl_hours * 3600)
    return _keep(response, ctx, rest)


def _account(
    service: ExternalIdentityService, pending: Pending, code: str, key: bytes
) -> tuple[ProviderAccount, str | None]:
    """The account of a redeemed code — the ID token's claims, completed from the
    userinfo endpoint when they lack the user name or the groups — and the provider's
    session id (``sid``), if it gave one."""
    provider = service.provider
    verifier = derived(key, "pkce", pending.state)
    tokens = provider.redeem(code=code, redirect_uri=pending.redirect_uri, code_verifier=verifier)
    claims = dict(
        provider.verify_id_token(tokens.id_token, nonce=derived(key, "nonce", pending.state))
    )
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
