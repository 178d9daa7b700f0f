"""Log in, log out, and the language switch.

Login and logout refuse cross-site posts (login CSRF: a page elsewhere must not
log the browser into another account); logout also needs the session's CSRF token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.schemas import LoginRequest
from balsam.domain.identity.service import IdentityService
from balsam.errors import BalsamError, RateLimited
from balsam.providers.identity.base import ProviderUnavailable
from balsam.web.deps import (
    clear_session_cookie,
    client_address,
    forget_session,
    get_ctx,
    request_id,
    set_session_cookie,
)
from balsam.web.origins import portal_origin
from balsam.web.pages import i18n
from balsam.web.pages.forms import (
    LOGGED_OUT_PATH,
    OIDC_LOGIN_PATH,
    NextQuery,
    login_url,
    page_session,
    read_form,
    refuse_cross_site,
    refuse_scripts,
    safe_next,
    session_form,
)
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)
#: A year: the language is a preference, not a secret.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600


def login_page(
    request: Request,
    next_path: str,
    *,
    error: str = "",
    username: str = "",
    status: int = 200,
    here: str | None = None,
) -> HTMLResponse:
    """The login page (the password form, the identity provider's button, or both),
    going on to ``next_path``; ``here`` replaces the page's own address where the
    language switch must not carry it on (a callback's code)."""
    own_address: dict[str, Any] = {"here": here} if here else {}
    return render(
        request,
        "login.html",
        status=status,
        next_path=next_path,
        error=error,
        username=username[:64],
        # A workspace link brought the person here: say so, they expected JupyterLab.
        opens_workspace=next_path.startswith("/workspace-session"),
        oidc=get_ctx(request).settings.oidc,
        oidc_href=login_url(next_path, OIDC_LOGIN_PATH),
        **own_address,
    )


def _start_session(request: Request, ctx: AppContext, credentials: LoginRequest) -> str:
    """Check the password and start a session; the session cookie's value."""
    identity = IdentityService(ctx)
    address = client_address(request)
    identity.check_browser_peer(address)  # before the password: nothing to audit
    user = identity.login_password(
        credentials.username,
        credentials.password,
        address=address,
        request_id=request_id(request),
    )
    value, _ = identity.start_session(user, address=address)
    return value


@router.get("/login")
def login_form(request: Request, next_path: NextQuery = None) -> Response:
    """The login form; ``next`` is where to go afterwards. With password sign-in
    turned off, straight on to the identity provider."""
    oidc = get_ctx(request).settings.oidc
    if oidc.enabled and not oidc.password_login:
        return RedirectResponse(login_url(next_path, OIDC_LOGIN_PATH), status_code=303)
    return login_page(request, safe_next(next_path))


@router.post("/login")
async def login(request: Request) -> Response:
    """Log in from the form: a session cookie and a redirect to ``next``, or the form
    again with a generic error (401, or 429 when rate limited)."""
    ctx = get_ctx(request)
    refuse_scripts(request)  # a workspace page must not log the browser in as another
    refuse_cross_site(request, ctx)
    form = await read_form(request)
    next_path, username = safe_next(form.get("next")), form.get("username", "")
    _ = i18n.gettext(request)
    if not ctx.settings.oidc.password_login:
        return login_page(
            request,
            next_path,
            status=403,
            error=_("Password sign-in is turned off: sign in with the identity provider."),
        )
    try:
        credentials = LoginRequest(username=username, password=form.get("password", ""))
    except ValidationError:
        return login_page(
            request,
            next_path,
            username=username,
            status=422,
            error=_("Enter your username and password."),
        )
    try:
        value = await run_in_threadpool(_start_session, request, ctx, credentials)
    except RateLimited:
        return login_page(
            request,
            next_path,
            username=username,
            status=429,
            error=_("Too many failed logins; try again later."),
        )
    except BalsamError:
        return login_page(
            request,
            next_path,
            username=username,
            status=401,
            error=_("Wrong username or password."),
        )
    auth = ctx.settings.auth
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, auth, auth.cookie_name, value, auth.session_ttl_hours * 3600)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the browser session and go to the login form."""
    ctx = get_ctx(request)
    auth = ctx.settings.auth
    cookie = request.cookies.get(auth.cookie_name)
    refuse_scripts(request)
    refuse_cross_site(request, ctx)
    session = await page_session(request) if cookie else None
    target = "/login"
    if cookie and session is not None:
        await session_form(request, session)  # a live session's logout carries its token
        target = await run_in_threadpool(_sign_out_target, request, ctx, cookie)
        username = await run_in_threadpool(
            IdentityService(ctx).end_session, cookie, client_address(request)
        )
        forget_session(request, cookie, username)
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response, auth)
    return response


def _sign_out_target(request: Request, ctx: AppContext, cookie: str) -> str:
    """Where the browser goes after logging out: for a session begun at the identity
    provider, the provider's own sign-out (RP-initiated logout: it comes back to
    /logged-out), so the next sign-in asks again; otherwise the login form."""
    if ctx.providers.identity is None:
        return "/login"
    try:
        _user, row = IdentityService(ctx).authenticate_session(cookie, client_address(request))
        if row.via != "oidc":
            return "/login"
        back = portal_origin(request, ctx.settings) + LOGGED_OUT_PATH
        url = ctx.providers.identity.end_session_url(post_logout_redirect_uri=back)
    except (BalsamError, ProviderUnavailable):
        return "/login"  # Balsam's session ends anyway
    return url or LOGGED_OUT_PATH


@router.get("/language")
def switch_language(request: Request, lang: str = "", next_path: NextQuery = None) -> Response:
    """Remember the chosen language (a cookie) and go back to the page."""
    response = RedirectResponse(safe_next(next_path), status_code=303)
    if lang in i18n.LANGUAGES:
        settings = get_ctx(request).settings
        response.set_cookie(
            i18n.COOKIE,
            lang,
            max_age=LANGUAGE_COOKIE_AGE,
            samesite="lax",
            secure=settings.auth.cookie_secure,
            path="/",
        )
    return response
