"""The portal's HTML pages: log in and log out (the home page with your workspaces
is :mod:`balsam.web.pages_workspaces`, included into this module's router).

Server-rendered, without scripts or external assets. Every page is sent with a
strict Content-Security-Policy (nothing loads but the page's one inline style,
whose hash the policy names; forms post only to Balsam), refuses to be framed,
and keeps the referrer on Balsam.

Login and logout refuse cross-site posts (login CSRF: a page elsewhere must not
log the browser into another account): an ``Origin`` header, when sent, must be
Balsam's own origin; without one, ``Sec-Fetch-Site`` must not say cross-site.
After login the browser goes to ``next`` only when it is a path on this site;
anything else (``//host``, ``/\\host``, a scheme, control characters) goes to ``/``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.schemas import LoginRequest
from balsam.domain.identity.service import IdentityService
from balsam.errors import BadRequest, BalsamError, Forbidden, PayloadTooLarge, RateLimited
from balsam.web.deps import Ctx, client_address, get_ctx, request_id

router = APIRouter(include_in_schema=False)

#: A login form is a few hundred bytes; anything much larger is not one.
MAX_FORM_BYTES = 16 * 1024
MAX_NEXT_LENGTH = 2000
#: Control characters (browsers drop tabs and newlines from URLs, so "/\t/evil"
#: becomes "//evil") and backslashes (which browsers read as "/").
_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x1f\x7f\\]")
NextQuery = Annotated[str | None, Query(alias="next")]

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;"
    "color:#1d2521}h1{font-size:1.5rem}label{display:block;margin-top:1rem}"
    "input,select{display:block;font:inherit;width:100%;max-width:22rem;padding:.3rem;box-sizing:border-box}"
    "button{font:inherit;margin-top:1rem;padding:.3rem 1rem}.error{color:#a40000}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;"
    "border-bottom:1px solid #ccd}header{display:flex;justify-content:space-between;"
    "align-items:center}header form button{margin:0}td form{display:inline}"
    "td button{margin:0 .3rem 0 0;padding:.1rem .5rem}.reason{display:block;font-size:.85em;"
    "color:#4a5550}h2{font-size:1.2rem;margin-top:2rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


# -- rules ----------------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/``."""
    if (not value or len(value) > MAX_NEXT_LENGTH or not value.startswith("/")
            or value.startswith("//") or _UNSAFE_IN_NEXT.search(value)):
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_site_post(request: Request, ctx: AppContext) -> bool:
    """Whether a form post comes from Balsam's own pages (or from no browser page)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "none") in ("same-origin", "none")
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}".lower(),
           _origin(ctx.settings.resolved_public_url)}
    return origin.lower() in own


def refuse_cross_site(request: Request, ctx: AppContext) -> None:
    if not same_site_post(request, ctx):
        raise Forbidden("Cross-site form posts are refused.")


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (first value each)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, errors="strict",
                          max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The form could not be read.") from exc
    return {name: values[0] for name, values in fields.items()}


# -- rendering ------------------------------------------------------------------------


def render_page(title: str, body: str, status: int = 200, *, head: str = "") -> HTMLResponse:
    """A whole page; ``head``: extra (trusted) markup for its head."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{head}'
        f"<title>{escape(title)} · Balsam</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>")
    return HTMLResponse(document, status_code=status, headers=SECURITY_HEADERS)


def _login_page(next_path: str, *, error: str = "", username: str = "",
                status: int = 200) -> HTMLResponse:
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return render_page("Log in", (
        f"<main><h1>Log in to Balsam</h1>{alert}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label for="username">Username</label>'
        '<input id="username" name="username" autocomplete="username" required autofocus'
        f' maxlength="64" value="{escape(username[:64])}">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password"'
        ' autocomplete="current-password" required>'
        '<button type="submit">Log in</button></form></main>'), status)


# -- handlers -------------------------------------------------------------------------


def _start_session(request: Request, ctx: AppContext, credentials: LoginRequest) -> str:
    """Check the password and start a session; the session cookie's value."""
    identity = IdentityService(ctx)
    user = identity.login_password(credentials.username, credentials.password,
                                   address=client_address(request),
                                   request_id=request_id(request))
    value, _ = identity.start_session(user)
    return value


@router.get("/login")
def login_form(next_path: NextQuery = None) -> HTMLResponse:
    """The login form; ``next`` is where to go afterwards."""
    return _login_page(safe_next(next_path))


@router.post("/login")
async def login(request: Request) -> Response:
    """Log in from the form: a session cookie and a redirect to ``next``, or the form
    again with a generic error (401, or 429 when rate limited)."""
    ctx = get_ctx(request)
    refuse_cross_site(request, ctx)
    form = await read_form(request)
    next_path, username = safe_next(form.get("next")), form.get("username", "")
    try:
        credentials = LoginRequest(username=username, password=form.get("password", ""))
    except ValidationError:
        return _login_page(next_path, error="Enter your username and password.",
                           username=username, status=422)
    try:
        value = await run_in_threadpool(_start_session, request, ctx, credentials)
    except RateLimited:
        return _login_page(next_path, error="Too many failed logins; try again later.",
                           username=username, status=429)
    except BalsamError:
        return _login_page(next_path, error="Wrong username or password.",
                           username=username, status=401)
    auth = ctx.settings.auth
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(auth.session_cookie, value, max_age=auth.session_ttl_hours * 3600,
                        httponly=True, samesite="lax", secure=auth.cookie_secure, path="/")
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx) -> Response:
    """End the browser session (if any) and go to the login form."""
    refuse_cross_site(request, ctx)
    auth = ctx.settings.auth
    cookie = request.cookies.get(auth.session_cookie)
    if cookie:
        IdentityService(ctx).end_session(cookie)
        request.app.state.proxy_access.forget_credential(cookie)  # no 5 s grace
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.session_cookie, path="/", httponly=True, samesite="lax",
                           secure=auth.cookie_secure)
    return response
