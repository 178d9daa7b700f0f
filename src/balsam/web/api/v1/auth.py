"""Login and logout for the portal (session cookie + CSRF token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from balsam.domain.identity.schemas import LoginRequest, LoginResponse
from balsam.domain.identity.service import IdentityService
from balsam.errors import Forbidden
from balsam.web.api.v1.common import problems
from balsam.web.deps import (
    Ctx,
    clear_session_cookie,
    client_address,
    forget_session,
    request_id,
    same_origin_request,
    set_session_cookie,
)

router = APIRouter(prefix="/auth", tags=["Auth"])


@router.post(
    "/login",
    response_model=LoginResponse,
    operation_id="Login",
    responses=problems(400, 401, 403, 422, 429),
)
def login(body: LoginRequest, request: Request, response: Response, ctx: Ctx) -> LoginResponse:
    """Check username and password and start a browser session. Refused to a page of
    another origin, which must not log the browser in as someone else."""
    if not same_origin_request(request, ctx.settings.resolved_public_url):
        raise Forbidden("Log in from Balsam's own pages.")
    identity = IdentityService(ctx)
    address = client_address(request)
    identity.check_browser_peer(address)  # before the password: nothing to audit
    user = identity.login_password(
        body.username,
        body.password,
        address=address,
        request_id=request_id(request),
    )
    value, session = identity.start_session(user, address=address)
    auth = ctx.settings.auth
    set_session_cookie(response, auth, auth.cookie_name, value, auth.session_ttl_hours * 3600)
    return LoginResponse(
        username=user.username, csrf_token=session.csrf_token, expires_at=session.expires_at
    )


@router.post("/logout", status_code=204, operation_id="Logout", responses=problems(403))
def logout(request: Request, response: Response, ctx: Ctx) -> Response:
    """End the browser session (if any). Refused to a page of another origin: a page
    elsewhere (a workspace's, say) must not end the session, or swap in another."""
    if not same_origin_request(request, ctx.settings.resolved_public_url):
        raise Forbidden("Log out from Balsam's own pages.")
    cookie = request.cookies.get(ctx.settings.auth.cookie_name)
    if cookie:
        ended = IdentityService(ctx).end_session(cookie, client_address(request))
        forget_session(request, cookie, ended)
    clear_session_cookie(response, ctx.settings.auth)
    response.status_code = 204
    return response
