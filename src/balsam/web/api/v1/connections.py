"""A project's data connections (extension): PostgreSQL, S3 and HTTP APIs whose
settings the project's workspaces get as ``BALSAM_CONN_<NAME>_*``. The secret is
accepted on creation only and never returned."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from balsam.domain.data.connections.schemas import (
    ConnectionCreate,
    ConnectionList,
    ConnectionPublic,
)
from balsam.domain.data.connections.service import ConnectionService
from balsam.web.api.v1.common import MEMBER, problems
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/projects/{projectId}/connections", tags=["Connections"])
ConnectionName = Annotated[str, Path(max_length=40, description="The connection's name.")]


@router.post(
    "",
    status_code=201,
    response_model=ConnectionPublic,
    operation_id="CreateConnection",
    responses={**MEMBER, **problems(409)},
)
def create_connection(
    projectId: ProjectId,
    body: Annotated[ConnectionCreate, Body()],
    actor: CurrentActor,
    ctx: Ctx,
) -> ConnectionPublic:
    """Add a connection (owners). Its secret (``password``, ``secretAccessKey``,
    ``token``) is stored sealed and never shown again: the answer says ``secretSet``."""
    return ConnectionService(ctx).create(actor, projectId, body)


@router.get("", response_model=ConnectionList, operation_id="ListConnections", responses=MEMBER)
def list_connections(projectId: ProjectId, actor: CurrentActor, ctx: Ctx) -> ConnectionList:
    """The project's connections, without secrets."""
    return ConnectionList(connections=ConnectionService(ctx).list(actor, projectId))


@router.get(
    "/{name}", response_model=ConnectionPublic, operation_id="GetConnection", responses=MEMBER
)
def get_connection(
    projectId: ProjectId, name: ConnectionName, actor: CurrentActor, ctx: Ctx
) -> ConnectionPublic:
    return ConnectionService(ctx).get(actor, projectId, name)


@router.delete("/{name}", status_code=204, operation_id="DeleteConnection", responses=MEMBER)
def delete_connection(
    projectId: ProjectId, name: ConnectionName, actor: CurrentActor, ctx: Ctx
) -> Response:
    """Delete a connection (owners). Workspaces get it no more from their next start."""
    ConnectionService(ctx).delete(actor, projectId, name)
    return Response(status_code=204)
