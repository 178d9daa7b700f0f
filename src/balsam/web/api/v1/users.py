"""Users and personal API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from balsam.domain.identity.external import GroupsReader, project_groups
from balsam.domain.identity.schemas import (
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserGroups,
    UserList,
    UserPublic,
    UserUpdate,
)
from balsam.domain.identity.service import IdentityService
from balsam.domain.identity.views import token_public, user_public
from balsam.web.api.v1.common import AUTH, Limit, Offset, problems
from balsam.web.deps import (
    AdminActor,
    BasicOrActor,
    Ctx,
    CurrentActor,
    provider_groups_reader,
)

router = APIRouter(prefix="/users", tags=["Users"])
Username = Annotated[str, Path(max_length=64)]


@router.post(
    "",
    status_code=201,
    response_model=UserPublic,
    operation_id="CreateUser",
    responses=problems(400, 401, 403, 409, 422),
)
def create_user(body: UserCreate, actor: AdminActor, ctx: Ctx) -> UserPublic:
    """Create a local user (admins only)."""
    return user_public(IdentityService(ctx).create_user(actor, body))


@router.get(
    "", response_model=UserList, operation_id="ListUsers", responses=problems(401, 403, 422)
)
def list_users(
    actor: AdminActor,
    ctx: Ctx,
    limit: Limit = 50,
    offset: Offset = 0,
    q: Annotated[str, Query(max_length=200)] = "",
) -> UserList:
    """All users (admins only)."""
    users, total = IdentityService(ctx).list_users(query=q, limit=limit, offset=offset)
    return UserList(users=[user_public(u) for u in users], total=total)


@router.get("/me", response_model=UserPublic, operation_id="GetCurrentUser", responses=AUTH)
def me(actor: CurrentActor, ctx: Ctx) -> UserPublic:
    """The authenticated user."""
    return user_public(IdentityService(ctx).get_user(actor.username))


@router.patch(
    "/{username}",
    response_model=UserPublic,
    operation_id="UpdateUser",
    responses=problems(400, 401, 403, 404, 409, 422),
)
def update_user(
    username: Username, body: UserUpdate, actor: CurrentActor, ctx: Ctx, request: Request
) -> UserPublic:
    """Change a user; only admins change status or other users."""
    user = IdentityService(ctx).update_user(actor, username, body)
    if body.is_active is False:  # the sessions ended: their open sockets go too
        request.app.state.proxy_access.forget_user(user.username)
    return user_public(user)


@router.post(
    "/me/tokens",
    status_code=201,
    response_model=TokenCreated,
    operation_id="CreateToken",
    responses=problems(400, 401, 403, 422, 429),
)
def create_token(body: TokenCreate, actor: BasicOrActor, ctx: Ctx) -> TokenCreated:
    """Mint a personal API token (accepts HTTP Basic with the password, for scripts)."""
    row, token = IdentityService(ctx).create_token(actor, body)
    return TokenCreated(**token_public(row).model_dump(by_alias=True), token=token)


@router.get(
    "/me/tokens", response_model=list[TokenPublic], operation_id="ListTokens", responses=AUTH
)
def list_tokens(actor: CurrentActor, ctx: Ctx) -> list[TokenPublic]:
    """The caller's live tokens (never the token values)."""
    return [token_public(t) for t in IdentityService(ctx).list_tokens(actor)]


@router.delete(
    "/me/tokens/{token_id}",
    status_code=204,
    operation_id="RevokeToken",
    responses=problems(401, 403, 404, 422),
)
def revoke_token(
    token_id: Annotated[str, Path(max_length=64)], actor: CurrentActor, ctx: Ctx
) -> Response:
    """Revoke one of the caller's tokens."""
    IdentityService(ctx).revoke_token(actor, token_id)
    return Response(status_code=204)


@router.get(
    "/{username}/groups",
    response_model=UserGroups,
    operation_id="GetUserGroups",
    responses=problems(401, 403, 404, 422),
)
def user_groups(
    username: Username,
    reader: Annotated[GroupsReader, Depends(provider_groups_reader)],
    ctx: Ctx,
) -> UserGroups:
    """The user's project groups (each project's ``authGroup``), for the identity
    provider to put into its tokens' ``groups`` claim: read by its service account (a
    client-credentials token of a client in ``BALSAM_OIDC__GROUPS_CLIENTS``), an
    administrator, or the user themself. Balsam's own decisions never rest on that
    claim."""
    return UserGroups(groups=project_groups(ctx, reader, username))
