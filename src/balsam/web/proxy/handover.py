"""The workspaces' host takes the portal's login over.

The portal's hand-over page (:mod:`balsam.web.pages.handover`) posts a one-time
ticket to the host of the workspace being opened; it becomes that host's session
cookie and the browser goes on to the workspace. Only a post from the portal's own
page is taken: another site's (or a workspace page's) post of a ticket of its own
would log the browser in here as someone else.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from balsam.domain.identity.handover import WorkspaceSessions
from balsam.errors import N_, Forbidden, NotFound, Unauthenticated
from balsam.web.deps import client_address, get_ctx, request_id, set_session_cookie
from balsam.web.origins import (
    ENTER_PATH,
    HANDOVER_PATH,
    hosts_workspace,
    on_workspace_port,
    portal_origin,
    request_host,
    url_origin,
    workspace_id_of,
)
from balsam.web.pages.forms import read_form
from balsam.web.pages.handover import workspace_next

router = APIRouter(include_in_schema=False)


@router.post(ENTER_PATH)
async def enter(request: Request) -> Response:
    """Exchange a ticket for this host's session cookie; then to ``next``."""
    ctx = get_ctx(request)
    settings = ctx.settings
    if not on_workspace_port(request.scope, settings):  # a shared origin has no hand-over
        raise NotFound("No such page.")
    if request.headers.get("origin", "").lower() != url_origin(portal_origin(request, settings)):
        raise Forbidden(N_("Open workspaces from Balsam's own pages."))
    form = await read_form(request)
    sessions = WorkspaceSessions(ctx)
    next_path = workspace_next(form.get("next"))
    workspace_id = workspace_id_of(next_path or "")
    host = request_host(request, settings).lower()
    if workspace_id is not None and not hosts_workspace(settings, host, workspace_id):
        # Each workspace's host has its own session: one handed over here must not
        # send the browser on to another's (whose host would not have it anyway).
        raise Forbidden(N_("Open workspaces from Balsam's own pages."))
    try:
        value, seconds = await run_in_threadpool(
            sessions.redeem, form.get("ticket", ""), request_id(request), client_address(request)
        )
    except Unauthenticated:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        # A browser whose ticket ran out (a tab left open, a computer asleep): the
        # portal hands over a fresh one (or asks to log in, if its session ended too).
        query = f"?next={quote(next_path, safe='')}" if next_path else ""
        again = portal_origin(request, settings) + HANDOVER_PATH + query
        return RedirectResponse(again, status_code=303)
    target = next_path or portal_origin(request, settings) + "/"
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    name = settings.auth.workspace_cookie_name
    set_session_cookie(response, settings.auth, name, value, seconds)
    return response
