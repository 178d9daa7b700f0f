"""Workspace and template shapes (upstream field names plus Balsam's extensions)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.schemas import ApiModel

State = Literal["pending", "running", "stopped", "failed"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class WorkspaceCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    template_id: str = Field(alias="templateId", max_length=63)
    project_id: str = Field(alias="projectId", max_length=63)
    branch_id: str = Field(alias="branchId", max_length=100)


class EnvironmentLock(_Out):
    """The exact packages a workspace runs with, for tracing results to them."""

    name: str = Field(description="<template>-<version>: one environment per version.")
    packages: dict[str, str] | None = Field(
        description="Package name → version (plus 'python'); null until built."
    )


class WorkspaceEnvironment(EnvironmentLock):
    """A workspace's environment: the template's lock and what its user added."""

    user_packages: dict[str, str] | None = Field(
        None,
        alias="userPackages",
        description="Packages the user installed into the workspace's home beside the "
        "environment (pip: name → version; R: 'R/<name>' → version), as read at its last "
        "start or stop; null until read.",
    )


class WorkspacePublic(_Out):
    id: str
    name: str
    template_id: str = Field(alias="templateId")
    project_id: str = Field(alias="projectId")
    branch_id: str = Field(alias="branchId")
    url: str = Field(
        description="Where a browser opens the workspace: /workspaces/<id>/ on the "
        "workspaces' own origin (an absolute URL), or on Balsam's origin (a path) where "
        "they share it."
    )
    owner: str
    state: State
    state_reason: str | None = Field(alias="stateReason")
    locked: bool = Field(description="The owner lost access to the project: it cannot start.")
    created_at: datetime = Field(alias="createdAt")
    last_activity_at: datetime | None = Field(alias="lastActivityAt")
    environment: WorkspaceEnvironment
    isolation: Literal["per-workspace", "none"] = Field(
        "per-workspace",
        description="'per-workspace': the workspace runs under a system user (or pod) of "
        "its own and can read neither Balsam's data nor other workspaces. 'none': Balsam "
        "does not run as root and every workspace runs as Balsam's own user.",
    )


class TemplatePublic(_Out):
    id: str
    name: str
    description: str
    requirements: list[str]
    memory_mib: int = Field(alias="memoryMib")
    cpu: float
    idle_timeout_minutes: int = Field(alias="idleTimeoutMinutes")
    environment: EnvironmentLock
