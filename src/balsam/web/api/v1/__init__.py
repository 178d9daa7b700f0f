"""API version 1: upstream BALSAM's contract plus Balsam's extensions."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from balsam.web.api.v1 import (
    audit,
    auth,
    connections,
    credentials,
    data,
    health,
    imports,
    libraries,
    members,
    projects,
    runs,
    search,
    uploads,
    users,
    workspaces,
)
from balsam.web.deps import refuse_nul_characters

router = APIRouter(dependencies=[Depends(refuse_nul_characters)])
for module in (
    health,
    auth,
    users,
    projects,
    members,
    credentials,
    audit,
    search,
    libraries,
    workspaces,
    uploads,
    data,
    connections,
    imports,
    runs,
):
    router.include_router(module.router)
