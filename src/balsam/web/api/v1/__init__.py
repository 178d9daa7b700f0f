"""API version 1: upstream BALSAM's contract plus Balsam's extensions."""

from __future__ import annotations

from fastapi import APIRouter

from balsam.web.api.v1 import audit, auth, credentials, members, projects, users

router = APIRouter()
for module in (auth, users, projects, members, credentials, audit):
    router.include_router(module.router)
