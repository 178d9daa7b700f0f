"""What every page and form needs: who is logged in, and the checks a form post
passes before anything is done.

A form post is refused (403) unless it comes from Balsam's own pages — an
``Origin`` header, when sent, must be Balsam's own origin; without one,
``Sec-Fetch-Site`` must not say cross-site — and, once logged in, unless it
carries the session's CSRF token in the ``csrf`` field. Pages act only on the
session cookie, never on a bearer token.

After login the browser goes to ``next`` only when it is a path on this site;
anything else (``//host``, ``/\\host``, a scheme, control characters) goes to ``/``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import Query
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.errors import BadRequest, Forbidden, PayloadTooLarge
from balsam.web.deps import browser_session, get_ctx, same_origin_request
from balsam.web.origins import on_workspace_port
from balsam.web.pages import i18n
from balsam.web.pages.i18n import N_

#: A form of the portal is a few hundred bytes; anything much larger is not one.
MAX_FORM_BYTES = 16 * 1024
MAX_NEXT_LENGTH = 2000
#: Control characters (browsers drop tabs and newlines from URLs, so "/\t/evil"
#: becomes "//evil") and backslashes (which browsers read as "/").
_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x1f\x7f\\]")
NextQuery = Annotated[str | None, Query(alias="next")]


@dataclass(frozen=True)
class PageSession:
    """The logged-in user of a page, and the token their forms carry."""

    actor: Actor
    csrf: str


class LoginRequired(Exception):
    """The page needs a logged-in user: the browser goes to the login form and back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/``."""
    if (
        not value
        or len(value) > MAX_NEXT_LENGTH
        or not value.startswith("/")
        or value.startswith("//")
        or _UNSAFE_IN_NEXT.search(value)
    ):
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


#: Where a sign-in with the identity provider begins, and where it ends after signing out.
OIDC_LOGIN_PATH = "/login/oidc"
LOGGED_OUT_PATH = "/logged-out"


def login_url(next_path: str | None, start: str = "/login") -> str:
    """``start`` (the login form, or :data:`OIDC_LOGIN_PATH`) that goes on to ``next``."""
    safe = safe_next(next_path)
    return start if safe == "/" else f"{start}?next={quote(safe, safe='/')}"


def refuse_cross_site(request: Request, ctx: AppContext) -> None:
    if not same_origin_request(request, ctx.settings.resolved_public_url):
        raise Forbidden(N_("Cross-site form posts are refused."))


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (first value each)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        fields = parse_qs(
            body.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=40
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The form could not be read.") from exc
    return {name: values[0] for name, values in fields.items()}


def refuse_scripts(request: Request) -> None:
    """Refuse a page asked for by a script (``fetch``/XHR: ``Sec-Fetch-Mode`` other
    than ``navigate``). Workspaces are served on Balsam's origin, so code running in
    one could otherwise read a portal page, with its CSRF token, as its user.
    Browsers send the header on every request; clients that do not (scripts outside
    a browser) are unaffected."""
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None and mode != "navigate":
        raise Forbidden(N_("Portal pages are opened by the browser, not fetched by scripts."))


async def page_session(request: Request) -> PageSession | None:
    """The page's logged-in user, or None; remembered on the request for rendering.
    Pages fetched by a script are refused (:func:`refuse_scripts`)."""
    refuse_scripts(request)
    ctx = get_ctx(request)
    found = await run_in_threadpool(browser_session, request, ctx)
    session = PageSession(*found) if found else None
    request.state.page_session = session
    if session is not None:
        request.state.actor = session.actor  # for the audit of a refused request
    return session


async def known_session(request: Request) -> None:
    """For an error page: remember the browser's logged-in user on the request if no
    page did yet, so the page shows the menu. Not for a script's request (the page
    would carry the session's CSRF token: :func:`page_session` refuses it), nor on the
    workspaces' port (whose pages the portal's links do not reach); never raises."""
    if getattr(request.state, "page_session", None) is not None or on_workspace_port(
        request.scope, get_ctx(request).settings
    ):
        return
    try:
        await page_session(request)
    except Exception:  # a script, an expired session, a database away: no menu
        return


async def require_session(request: Request) -> PageSession:
    """The page's logged-in user; without one the browser goes to log in (and back)."""
    session = await page_session(request)
    if session is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query)
    return session


async def posted_form(request: Request) -> tuple[PageSession, dict[str, str]]:
    """A logged-in user's form post, checked (same site, CSRF token), and its fields."""
    refuse_cross_site(request, get_ctx(request))
    session = await require_session(request)
    return session, await session_form(request, session)


async def session_form(request: Request, session: PageSession) -> dict[str, str]:
    """The fields of ``session``'s form post, refused (403) without its CSRF token.
    The caller has refused cross-site posts."""
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
        raise Forbidden(
            N_(
                "The form's security token is missing or out of date; reload "
                "the page and try again."
            )
        )
    return form


def done_redirect(path: str, done: str) -> RedirectResponse:
    """The answer to a form that worked: 303 to ``path`` saying ``done`` (a key of the
    page's messages), so that a reload shows the page again instead of posting the
    form a second time. (Pages that show a secret once answer the post itself.)"""
    separator = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{separator}{urlencode({'done': done})}", status_code=303)


def done_message(request: Request, messages: Mapping[str, str]) -> str:
    """The message the ``done`` key of the address names, translated; "" for none or
    an unknown one (a link anybody can craft puts no words in Balsam's mouth)."""
    template = messages.get(request.query_params.get("done", ""))
    return i18n.gettext(request)(template) if template else ""
