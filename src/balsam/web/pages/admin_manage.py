"""Administration: users, knowledge libraries, workspace templates and the whole
audit trail.

Every page and form asks the domain services, which refuse anyone but an
administrator (403); the pages only spare others the buttons. A reset password
is shown once, on the page the form answers with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from balsam.context import AppContext
from balsam.domain.audit.activity import all_activity
from balsam.domain.identity.schemas import UserCreate, UserUpdate
from balsam.domain.identity.service import Actor, IdentityService, require_admin
from balsam.domain.identity.views import user_public
from balsam.domain.library.schemas import LibraryCreate, LibraryUpdate
from balsam.domain.library.service import LibraryService
from balsam.domain.library.views import library_public
from balsam.domain.workspaces.schemas import TemplatePublic
from balsam.domain.workspaces.service import WorkspaceService
from balsam.errors import BalsamError, InvalidInput
from balsam.web.deps import get_ctx, queue_sync
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

PAGE = 50
_USER_CHANGES: dict[str, dict[str, bool]] = {
    "deactivate": {"isActive": False},
    "activate": {"isActive": True},
    "make-admin": {"isAdmin": True},
    "remove-admin": {"isAdmin": False},
}


#: What the pages say after a form worked (``?done=<key>``).
USERS_DONE = {"created": N_("The user is created."), "saved": N_("Saved.")}
LIBRARIES_DONE = {
    "registered": N_("The library is registered; its first sync has started."),
    "saved": N_("Saved."),
    "removed": N_("The library is removed."),
}

# -- users ---------------------------------------------------------------------------


def _users(ctx: AppContext, actor: Actor, query: str, page: int) -> dict[str, Any]:
    rows, total = IdentityService(ctx).users_for_admin(
        actor, query=query, limit=PAGE, offset=(page - 1) * PAGE
    )
    return {"users": [user_public(u) for u in rows], "total": total, "page": page,
            "pages": max(1, -(-total // PAGE)), "query": query}  # fmt: skip


async def _users_page(
    request: Request, session: PageSession, *, status: int = 200, query: str = "",
    page: int = 1, **extra: Any,
) -> HTMLResponse:  # fmt: skip
    loaded = await run_in_threadpool(_users, get_ctx(request), session.actor, query, page)
    context = {"error": "", "done": "", "password": None, "filled": {}} | extra
    return render(request, "admin/users.html", status=status, nav="admin", **loaded, **context)


@router.get("/admin/users")
async def users_page(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    session = await require_session(request)
    done = done_message(request, USERS_DONE)
    return await _users_page(request, session, query=q.strip(), page=page, done=done)


async def _user_action(
    request: Request,
    session: PageSession,
    work: Callable[[AppContext], Any],
    filled: dict[str, str] | None = None,
) -> tuple[Any, HTMLResponse | None]:
    """Run ``work``; on refusal, the users page with the message (and the new-user
    form's fields as ``filled``, the password left out)."""
    try:
        return await run_in_threadpool(work, get_ctx(request)), None
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        kept = {k: v for k, v in (filled or {}).items() if k not in ("password", "csrf")}
        return None, await _users_page(
            request, session, status=exc.status, error=message, filled=kept
        )


@router.post("/admin/users")
async def create_user(request: Request) -> Response:
    session, form = await posted_form(request)

    def create(ctx: AppContext) -> object:
        try:
            data = UserCreate.model_validate({
                "username": form.get("username", "").strip(),
                "displayName": form.get("displayName", "").strip(),
                "email": form.get("email", "").strip(),
                "password": form.get("password", ""),
                "isAdmin": form.get("isAdmin") == "1",
            })  # fmt: skip
        except ValidationError as exc:
            raise InvalidInput(N_("Check the user name, email and password.")) from exc
        return IdentityService(ctx).create_user(session.actor, data)

    _, refused = await _user_action(request, session, create, filled=form)
    if refused is not None:
        return refused
    return done_redirect("/admin/users", "created")


@router.post("/admin/users/{username}/{action}")
async def change_user(request: Request, username: str, action: str) -> Response:
    """Deactivate, activate, make or unmake an administrator, or reset the password."""
    session, _ = await posted_form(request)
    change = _USER_CHANGES.get(action)

    def act(ctx: AppContext) -> str | None:
        service = IdentityService(ctx)
        if action == "reset-password":
            return service.reset_password(session.actor, username[:64])
        if change is None:
            raise InvalidInput(N_("No such action."))
        service.update_user(session.actor, username[:64], UserUpdate.model_validate(change))
        return None

    password, refused = await _user_action(request, session, act)
    if refused is not None:
        return refused
    # A reset or a deactivation ended the user's sessions: their open sockets go too.
    request.app.state.proxy_access.forget_user(username[:64])
    if password is None:
        return done_redirect("/admin/users", "saved")
    # The new password is shown once, by this answer (never stored, never redirected).
    done = i18n.gettext(request)(USERS_DONE["saved"])
    shown = {"username": username, "password": password}
    return await _users_page(request, session, done=done, password=shown)


# -- knowledge libraries -------------------------------------------------------------------


def _libraries(ctx: AppContext, actor: Actor) -> dict[str, Any]:
    require_admin(actor)
    return {"libraries": [library_public(lib) for lib in LibraryService(ctx).list()]}


async def _libraries_page(
    request: Request, session: PageSession, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    loaded = await run_in_threadpool(_libraries, get_ctx(request), session.actor)
    context = {"error": "", "done": "", "filled": {}} | extra
    return render(request, "admin/libraries.html", status=status, nav="admin", **loaded, **context)


@router.get("/admin/libraries")
async def libraries_page(request: Request) -> HTMLResponse:
    session = await require_session(request)
    return await _libraries_page(request, session, done=done_message(request, LIBRARIES_DONE))


@router.post("/admin/libraries")
async def register_library(request: Request, background: BackgroundTasks) -> Response:
    """Register a library; its first sync runs in the background."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)
    filled = {
        k: form.get(k, "").strip() for k in ("name", "repositoryUrl", "branch", "description")
    }

    def create(ctx: AppContext) -> Any:
        try:
            data = LibraryCreate.model_validate({**filled, "branch": filled["branch"] or None})
        except ValidationError as exc:
            raise InvalidInput(N_("Check the name, the repository URL and the branch.")) from exc
        return LibraryService(ctx).create(session.actor, data)

    try:
        library = await run_in_threadpool(create, ctx)
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        return await _libraries_page(request, session, status=exc.status, error=message,
                                     filled=filled)  # fmt: skip
    queue_sync(request, background, ctx, library.id)
    return done_redirect("/admin/libraries", "registered")


@router.post("/admin/libraries/{library_id}")
async def change_library(
    request: Request, library_id: str, background: BackgroundTasks
) -> Response:
    """Change where a library comes from (URL, branch); a change is synced at once."""
    session, form = await posted_form(request)
    ctx = get_ctx(request)

    def change(ctx: AppContext) -> tuple[Any, bool]:
        try:
            data = LibraryUpdate.model_validate(
                {
                    "repositoryUrl": form.get("repositoryUrl", "").strip(),
                    "branch": form.get("branch", "").strip() or None,
                }
            )
        except ValidationError as exc:
            raise InvalidInput(N_("Check the repository URL and the branch.")) from exc
        return LibraryService(ctx).update(session.actor, library_id[:63], data)

    try:
        _, moved = await run_in_threadpool(change, ctx)
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        return await _libraries_page(request, session, status=exc.status, error=message)
    if moved:
        queue_sync(request, background, ctx, library_id[:63])
    return done_redirect("/admin/libraries", "saved")


@router.post("/admin/libraries/{library_id}/remove")
async def remove_library(request: Request, library_id: str) -> Response:
    session, _ = await posted_form(request)
    ctx = get_ctx(request)
    try:
        await run_in_threadpool(LibraryService(ctx).delete, session.actor, library_id[:63])
    except BalsamError as exc:
        message = i18n.message_of(request, exc)
        return await _libraries_page(request, session, status=exc.status, error=message)
    return done_redirect("/admin/libraries", "removed")


# -- workspace templates ---------------------------------------------------------------------


def _templates(ctx: AppContext, actor: Actor) -> list[TemplatePublic]:
    require_admin(actor)
    return WorkspaceService(ctx).templates()


@router.get("/admin/templates")
async def templates_page(request: Request) -> HTMLResponse:
    """The workspace templates with their limits and locked environments; they are
    set in the templates file (``BALSAM_WORKSPACES__TEMPLATES_FILE``), not here."""
    session = await require_session(request)
    templates = await run_in_threadpool(_templates, get_ctx(request), session.actor)
    return render(request, "admin/templates.html", nav="admin", templates=templates)


# -- the audit trail -------------------------------------------------------------------------


@router.get("/admin/audit")
async def audit_page(
    request: Request,
    project: Annotated[str, Query(max_length=63)] = "",
    user: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Every audit record, newest first, filtered by project, user and action."""
    session = await require_session(request)
    filters = {"project_id": project.strip() or None, "user": user.strip() or None,
               "action": action.strip() or None}  # fmt: skip
    found = await run_in_threadpool(
        lambda: all_activity(
            get_ctx(request), session.actor, **filters, limit=PAGE, offset=(page - 1) * PAGE
        )
    )
    query = {"project": project, "user": user, "action": action}
    return render(request, "admin/audit.html", nav="admin", activity=found, page=page,
                  pages=max(1, -(-found.total // PAGE)), filters=query)  # fmt: skip
