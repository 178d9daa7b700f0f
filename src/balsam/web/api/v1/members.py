"""Project members (extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from balsam.domain.projects.members import MemberService
from balsam.domain.projects.schemas import MemberAdd, MemberList, MemberPublic, MemberUpdate
from balsam.domain.projects.views import member_public
from balsam.web.api.v1.common import MEMBER, problems
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/projects/{projectId}/members", tags=["Members"])
Username = Annotated[str, Path(max_length=64)]


@router.get("", response_model=MemberList, operation_id="ListMembers", responses=MEMBER)
def list_members(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> MemberList:
    """Members of the project with their roles."""
    return MemberList(members=[member_public(m) for m in MemberService(ctx).list(actor, projectId)])


@router.post(
    "",
    status_code=201,
    response_model=MemberPublic,
    operation_id="AddMember",
    responses={**MEMBER, **problems(409)},
)
def add_member(
    projectId: ProjectId, body: MemberAdd, actor: CurrentActor, ctx: Ctx
) -> MemberPublic:
    """Add a user to the project (owners)."""
    return member_public(MemberService(ctx).add(actor, projectId, body))


@router.patch(
    "/{username}",
    response_model=MemberPublic,
    operation_id="UpdateMember",
    responses={**MEMBER, **problems(409)},
)
def update_member(
    projectId: ProjectId, username: Username, body: MemberUpdate, actor: CurrentActor, ctx: Ctx
) -> MemberPublic:
    """Change a member's role (owners); the last owner stays an owner."""
    service = MemberService(ctx)
    service.change_role(actor, projectId, username, body.role)
    return next(
        member_public(m) for m in service.list(actor, projectId) if m.user.username == username
    )


@router.delete(
    "/{username}",
    status_code=204,
    operation_id="RemoveMember",
    responses={**MEMBER, **problems(409)},
)
def remove_member(
    projectId: ProjectId, username: Username, actor: CurrentActor, ctx: Ctx
) -> Response:
    """Remove a member (owners, or members leaving) and revoke their keys."""
    MemberService(ctx).remove(actor, projectId, username)
    return Response(status_code=204)
