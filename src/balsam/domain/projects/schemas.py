"""Project, branch, member, file and credential shapes (upstream field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.schemas import ApiModel

Role = Literal["owner", "member"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class LibrarySource(ApiModel):
    """A template JSON or an example-project folder of a knowledge library."""

    library_id: str = Field(alias="libraryId", max_length=63)
    path: str = Field(
        max_length=4096,
        description="Path inside the library, e.g. 'Templates/x.json' or 'ExampleProjects/Name'.",
    )


class ProjectCreate(ApiModel):
    name: str = Field(max_length=10_000)
    description: str = Field("", max_length=10_000)
    branch_name: str = Field(alias="branchName", max_length=1000)
    source_location: str | None = Field(None, alias="sourceLocation", max_length=2000)
    source: LibrarySource | None = Field(
        None,
        description="Start from a knowledge-library template or example project "
        "(instead of sourceLocation).",
    )


class ProjectUpdate(ApiModel):
    """Fields to change; those left out stay as they are."""

    description: str | None = Field(None, max_length=10_000)
    storage_quota_bytes: int | None = Field(
        None,
        alias="storageQuotaBytes",
        ge=0,
        le=2**62,
        description="Administrators: bytes the project's bucket may hold; null: the "
        "installation's default (storage.quota_bytes).",
    )


class BranchPublic(_Out):
    id: str
    name: str
    description: str = ""
    is_default: bool = Field(alias="isDefault")


class S3Credentials(_Out):
    access_key: str = Field(alias="accessKey")
    secret_key: str = Field(alias="secretKey", description="Shown once, never stored.")
    endpoint: str
    bucket: str
    region: str


class ProjectCreated(_Out):
    id: str
    name: str
    auth_group: str = Field(alias="authGroup")
    git_url: str = Field(alias="gitUrl")
    bucket: str
    credentials: S3Credentials = Field(
        description="The creator's first S3 key for the project bucket (secret shown once)."
    )


class ProjectPublic(_Out):
    id: str
    name: str
    description: str = ""
    git_url: str = Field(alias="gitUrl")
    auth_group: str = Field(alias="authGroup")
    branches: list[BranchPublic]
    bucket: str
    source_location: str | None = Field(None, alias="sourceLocation")
    created_at: datetime = Field(alias="createdAt")
    role: Role | None = Field(
        None, description="The caller's role; null for admins who are not members."
    )
    storage_quota_bytes: int | None = Field(
        None,
        alias="storageQuotaBytes",
        description="Balsam's extension: the project's own storage quota; null: the "
        "installation's default (see GET …/usage for the quota in force).",
    )


class ProjectList(_Out):
    projects: list[ProjectPublic]
    total: int
    limit: int
    offset: int


class BranchCreate(ApiModel):
    name: str = Field(max_length=1000)
    description: str = Field("", max_length=10_000)
    from_branch: str | None = Field(None, alias="fromBranch", max_length=1000)


class BranchCreated(_Out):
    id: str
    project_id: str = Field(alias="projectId")
    name: str


class RepoFile(_Out):
    id: str
    path: str
    name: str
    type: Literal["File", "Folder"]
    content_url: str | None = Field(None, alias="contentUrl")


class MemberAdd(ApiModel):
    username: str = Field(max_length=64)
    role: Role = "member"


class MemberUpdate(ApiModel):
    role: Role


class MemberPublic(_Out):
    username: str
    display_name: str = Field(alias="displayName")
    role: Role
    added_at: datetime = Field(alias="addedAt")


class MemberList(_Out):
    members: list[MemberPublic]


class CredentialCreate(ApiModel):
    name: str = Field("", max_length=100)


class CredentialPublic(_Out):
    access_key: str = Field(alias="accessKey")
    name: str
    owner: str
    bucket: str
    endpoint: str
    created_at: datetime = Field(alias="createdAt")


class CredentialCreated(CredentialPublic):
    secret_key: str = Field(alias="secretKey", description="Shown once, never stored.")
    region: str


class CredentialList(_Out):
    credentials: list[CredentialPublic]
