"""The portal hands its login over to the workspaces' host.

Workspaces are served on a host of their own (:mod:`balsam.web.origins`), which
the portal's session cookie does not reach. This page, opened by a logged-in user
(the workspace host sends a browser without a session of its own here), posts a
one-time ticket to the workspace host in a form (never in a URL): there the ticket
becomes that host's cookie (:mod:`balsam.web.proxy.handover`) and the browser goes
on to the workspace. balsam.js submits the form at once; without JavaScript the
user presses its button.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from balsam.domain.identity.handover import WorkspaceSessions
from balsam.web.cookies import session_cookie
from balsam.web.deps import get_ctx
from balsam.web.origins import (
    ENTER_PATH,
    HANDOVER_PATH,
    WORKSPACE_PREFIX,
    workspace_id_of,
    workspace_origin,
)
from balsam.web.pages.forms import NextQuery, require_session, safe_next
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)

#: The workspace host takes the post only with the portal's ``Origin``, which a
#: stricter policy (the portal's same-origin) would blank; nothing but the origin
#: goes with it. (Not kept: ``no-store``, as every page.)
PRIVATE = {"Referrer-Policy": "strict-origin"}


def workspace_next(value: str | None) -> str | None:
    """``value`` when it is a workspace's address on this site, else None."""
    target = safe_next(value)
    return target if target.startswith(WORKSPACE_PREFIX) else None


@router.get(HANDOVER_PATH)
async def hand_over(request: Request, next_path: NextQuery = None) -> Response:
    """A page that posts a fresh ticket to the host of ``next``'s workspace."""
    await require_session(request)  # else to log in, and back here
    target = workspace_next(next_path)
    ctx = get_ctx(request)
    workspace_id = workspace_id_of(target or "")
    if target is None or workspace_id is None:  # not a workspace's address
        return RedirectResponse("/", status_code=303)
    origin = workspace_origin(request, ctx.settings, workspace_id)
    if origin is None:  # the portal's own origin: nothing to hand over
        return RedirectResponse(target, status_code=303)
    cookie = session_cookie(request, ctx.settings.auth.cookie_name) or ""
    ticket = await run_in_threadpool(WorkspaceSessions(ctx).issue_ticket, cookie)
    return render(
        request,
        "handover.html",
        headers=PRIVATE,
        action=origin + ENTER_PATH,
        ticket=ticket,
        target=target,
    )
