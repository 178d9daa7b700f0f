"""Git smart HTTP at ``/git/<project>.git``, authorised per project.

Clients authenticate with HTTP Basic: the username and a personal API token
(or the password), or a workspace's git token, valid for its project only.
Members may fetch and push. Anonymous requests get 401
with a Basic challenge (so git asks for credentials); authenticated users who
are not members get 403 whether or not the repository exists, so nothing
about other people's repositories leaks. Pushes, fetches and denials are
audited.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.projects.git_access import GitAccess
from balsam.domain.projects.push_hook import PUSH_LOG, ensure_hook_scripts
from balsam.domain.projects.pushes import PushService, parse_updates
from balsam.errors import Forbidden, RateLimited, Unauthenticated
from balsam.web.deps import basic_credentials, client_address, request_id
from balsam.web.errors import problem
from balsam.web.git_http import git_http_response, git_service_of
from balsam.web.slots import Slots, app_slots

router = APIRouter(include_in_schema=False)
CHALLENGE = {"WWW-Authenticate": 'Basic realm="Balsam git", charset="UTF-8"'}


def _authorize(request: Request, ctx: AppContext, repo: str, write: bool) -> Actor | Response:
    """The member allowed in, or the refusal to send (blocking: run in a thread).
    The domain decides (:class:`GitAccess`); this only translates."""
    creds = basic_credentials(request)
    if creds is None:
        return problem(
            401, "Log in with your username and an API token.", request=request, headers=CHALLENGE
        )
    access = GitAccess(ctx)
    try:
        actor = access.authenticate(
            *creds, repo, address=client_address(request), request_id=request_id(request)
        )
    except (Unauthenticated, RateLimited) as exc:
        return problem(exc.status, exc.message, request=request, headers=CHALLENGE)
    # Pushes are audited with their updates, after git has run.
    fetch = request.method == "POST" and not write
    try:
        access.authorize(actor, repo, write=write, fetch=fetch)
    except Forbidden as exc:
        return problem(403, exc.message, request=request)
    return actor


@router.api_route("/git/{repo}.git/{path:path}", methods=["GET", "POST"])
async def git_smart_http(repo: str, path: str, request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    service = git_service_of("/" + path, request.url.query)
    if service is None or "\x00" in repo:
        return problem(404, "Only git's smart HTTP protocol is served here.", request=request)
    write = service == "receive-pack"
    allowed = await run_in_threadpool(_authorize, request, ctx, repo, write)
    if isinstance(allowed, Response):
        return allowed
    slots = _slots(request, ctx)
    if not slots.take(allowed.username):
        return problem(
            503,
            "Too many git requests at once; try again shortly.",
            request=request,
            headers={"Retry-After": "5"},
        )
    try:
        response = await _serve(request, ctx, repo, path, allowed, write)
    except BaseException:
        slots.give(allowed.username)
        raise
    return _releasing(response, lambda: slots.give(allowed.username))


async def _serve(
    request: Request, ctx: AppContext, repo: str, path: str, allowed: Actor, write: bool
) -> Response:
    idle = ctx.settings.git.body_idle_seconds
    repo_path = ctx.providers.git.repository_path(repo)  # type: ignore[attr-defined]
    if not (write and request.method == "POST"):  # reads, and a push's ref advertisement
        return await git_http_response(
            request,
            repo_path=repo_path,
            path_info="/" + path,
            remote_user=allowed.username,
            allow_push=True,
            body_idle_seconds=idle,
        )
    pushes = PushService(ctx)
    policy = await run_in_threadpool(pushes.policy, allowed, repo)
    if policy is None:
        return problem(404, f"No project '{repo}'.", request=request)
    hooks = _hooks_dir(request, ctx)
    fd, log = tempfile.mkstemp(prefix="push-", suffix=".log", dir=hooks / "logs")
    os.close(fd)
    response = await git_http_response(
        request,
        repo_path=repo_path,
        path_info="/" + path,
        remote_user=allowed.username,
        allow_push=True,
        config={"core.hooksPath": str(hooks)},
        environment={**policy.environment(), PUSH_LOG: log},
        body_idle_seconds=idle,
    )
    follow = _PushFollowUp(pushes, allowed, repo, Path(log))
    if isinstance(response, StreamingResponse):
        response.body_iterator = follow.before_last_chunk(response.body_iterator)
    else:
        follow()
    return response


def _slots(request: Request, ctx: AppContext) -> Slots:
    git = ctx.settings.git
    return app_slots(request, "git_slots", git.max_requests, git.max_requests_per_user)


class _Releasing(Response):
    """``inner``, calling ``release`` once it has been sent, failed or been cut off
    (a client that goes away mid-stream included)."""

    def __init__(self, inner: Response, release: Callable[[], None]) -> None:
        self.inner, self.release = inner, release
        self.status_code, self.raw_headers = inner.status_code, inner.raw_headers
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.release()


def _releasing(response: Response, release: Callable[[], None]) -> Response:
    if not isinstance(response, StreamingResponse):
        release()
        return response
    return _Releasing(response, release)


def _hooks_dir(request: Request, ctx: AppContext) -> Path:
    """The receive hooks (written once per app; see ``push_hook``)."""
    hooks: Path | None = getattr(request.app.state, "git_hooks", None)
    if hooks is None:
        hooks = ensure_hook_scripts(ctx.settings.data_dir.resolve() / "git-hooks")
        (hooks / "logs").mkdir(mode=0o700, exist_ok=True)
        request.app.state.git_hooks = hooks
    return hooks


class _PushFollowUp:
    """After git has updated the refs: audit what it updated, and let the branch list
    follow git. Runs before the last chunk of git's answer is sent, so a client that
    sees its push succeed finds the API already agreeing; runs once, also if the
    client goes away meanwhile."""

    def __init__(self, pushes: PushService, actor: Actor, repo: str, log: Path) -> None:
        self._args = (pushes, actor, repo, log)
        self._done = False

    def __call__(self) -> None:
        if self._done:
            return
        self._done = True
        pushes, actor, repo, log = self._args
        try:
            updates = parse_updates(log.read_text(encoding="utf-8"))
        finally:
            log.unlink(missing_ok=True)
        pushes.apply(actor, repo, updates)

    async def before_last_chunk(self, body: AsyncIterable[Any]) -> AsyncIterator[Any]:
        previous = None
        try:
            async for chunk in body:
                if previous is not None:
                    yield previous
                previous = chunk
            await run_in_threadpool(self)
        finally:
            self()  # the client went away: still audit what git did
        if previous is not None:
            yield previous
