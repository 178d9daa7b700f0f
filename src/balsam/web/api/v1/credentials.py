"""Project-scoped S3 credentials (extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from balsam.domain.credentials.service import CredentialService
from balsam.domain.credentials.views import credential_created, credential_public
from balsam.domain.projects.schemas import (
    CredentialCreate,
    CredentialCreated,
    CredentialList,
)
from balsam.web.api.v1.common import MEMBER, problems
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/projects/{projectId}/credentials", tags=["Credentials"])


@router.post(
    "",
    status_code=201,
    response_model=CredentialCreated,
    operation_id="CreateCredential",
    responses={**MEMBER, **problems(502)},
)
def create_credential(
    projectId: ProjectId,
    actor: CurrentActor,
    ctx: Ctx,
    body: Annotated[CredentialCreate | None, Body()] = None,
) -> CredentialCreated:
    """Mint an S3 key for the project's bucket; the secret is shown once."""
    row, key = CredentialService(ctx).mint(actor, projectId, body.name if body else "")
    return credential_created(ctx, row, key, actor.username)


@router.get("", response_model=CredentialList, operation_id="ListCredentials", responses=MEMBER)
def list_credentials(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> CredentialList:
    """The caller's keys for the project (every key, for owners), without secrets."""
    rows = CredentialService(ctx).list(actor, projectId)
    return CredentialList(
        credentials=[credential_public(ctx, c, owner, projectId) for c, owner in rows]
    )


@router.delete(
    "/{accessKey}",
    status_code=204,
    operation_id="RevokeCredential",
    responses={**MEMBER, **problems(502)},
)
def revoke_credential(
    projectId: ProjectId,
    accessKey: Annotated[str, Path(max_length=128)],
    actor: CurrentActor,
    ctx: Ctx,
) -> Response:
    """Revoke a key at once."""
    CredentialService(ctx).revoke(actor, projectId, accessKey)
    return Response(status_code=204)
