"""My account: display name, password and personal API tokens.

A new token is shown once, on the page the form answers with (never stored, never
put in a redirect). Changing the password checks the current one as a login does
(rate-limited, audited) and ends the user's other login sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.identity.schemas import TokenCreate, UserUpdate
from balsam.domain.identity.service import Actor, IdentityService
from balsam.domain.identity.views import token_public, user_public
from balsam.errors import BalsamError, InvalidInput
from balsam.web.cookies import session_cookie
from balsam.web.deps import client_address, get_ctx
from balsam.web.pages import i18n
from balsam.web.pages.forms import (
    PageSession,
    done_message,
    done_redirect,
    posted_form,
    require_session,
)
from balsam.web.pages.i18n import N_
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

HERE = "/account"
#: What the page says after a form worked (``?done=<key>``).
DONE = {
    "name": N_("Your name is saved."),
    "password": N_("Your password is changed."),
    "token-revoked": N_("The token is revoked."),
}


def _load(ctx: AppContext, actor: Actor) -> dict[str, Any]:
    service = IdentityService(ctx)
    return {
        "me": user_public(service.get_user(actor.username)),
        "tokens": [token_public(t) for t in service.list_tokens(actor)],
        "max_days": ctx.settings.auth.token_max_days,
    }


async def _page(
    request: Request, session: PageSession, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    loaded = await run_in_threadpool(_load, get_ctx(request), session.actor)
    context = {"error": "", "done": "", "created": None} | extra
    return render(request, "account.html", status=status, nav="account", **loaded, **context)


@router.get(HERE)
async def account_page(request: Request) -> HTMLResponse:
    session = await require_session(request)
    return await _page(request, session, done=done_message(request, DONE))


async def _act(
    request: Request, session: PageSession, work: Callable[[AppContext], object], done: str
) -> Response:
    """Run ``work``: then the page saying ``done`` (a key of :data:`DONE`), or the
    page with the refusal."""
    try:
        await run_in_threadpool(work, get_ctx(request))
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        return await _page(request, session, status=exc.status, error=message)
    return done_redirect(HERE, done)


@router.post(HERE + "/profile")
async def update_profile(request: Request) -> Response:
    session, form = await posted_form(request)

    def update(ctx: AppContext) -> object:
        try:
            data = UserUpdate.model_validate({"displayName": form.get("displayName", "").strip()})
        except ValidationError as exc:
            raise InvalidInput(N_("The name is too long.")) from exc
        return IdentityService(ctx).update_user(session.actor, session.actor.username, data)

    return await _act(request, session, update, "name")


@router.post(HERE + "/password")
async def change_password(request: Request) -> Response:
    session, form = await posted_form(request)
    new = form.get("new", "")
    ctx = get_ctx(request)
    cookie = session_cookie(request, ctx.settings.auth.cookie_name)

    def change(ctx: AppContext) -> object:
        if new != form.get("repeat", ""):
            raise InvalidInput(N_("The new passwords differ."))
        IdentityService(ctx).change_password(
            session.actor,
            form.get("current", ""),
            new,
            address=client_address(request),
            keep_session=cookie,
        )
        return None

    return await _act(request, session, change, "password")


@router.post(HERE + "/tokens")
async def create_token(request: Request) -> Response:
    """A new personal API token, shown once on the page that answers."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    try:
        days = form.get("days", "").strip() or "30"
        data = TokenCreate.model_validate(
            {
                "name": form.get("name", "").strip(),
                "expiresInDays": int(days) if days.isdigit() else 0,
            }
        )
        row, token = await run_in_threadpool(IdentityService(ctx).create_token, session.actor, data)
    except ValidationError:
        message = i18n.gettext(request)(N_("Give the token a name and a number of days."))
        return await _page(request, session, status=422, error=message)
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        return await _page(request, session, status=exc.status, error=message)
    created = {"token": token, **token_public(row).model_dump()}
    return await _page(request, session, status=201, created=created)


@router.post(HERE + "/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str) -> Response:
    session, _ = await posted_form(request)

    def revoke(ctx: AppContext) -> object:
        IdentityService(ctx).revoke_token(session.actor, token_id[:64])
        return None

    try:
        await run_in_threadpool(revoke, get_ctx(request))
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        return await _page(request, session, status=exc.status, error=message)
    return done_redirect(HERE, "token-revoked")
