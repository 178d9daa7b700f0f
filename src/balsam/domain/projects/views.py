"""The API's view of projects, branches and members (database rows → public schemas).

Shared by the JSON API and the portal's pages, so both show the same fields.
"""

from __future__ import annotations

from balsam.context import AppContext
from balsam.db.models import Branch, Membership, Project
from balsam.domain.projects.schemas import (
    BranchPublic,
    MemberPublic,
    ProjectCreated,
    ProjectPublic,
    S3Credentials,
)
from balsam.domain.projects.service import CreatedProject, auth_group


def git_url(ctx: AppContext, project_id: str) -> str:
    return f"{ctx.settings.resolved_public_url}/git/{project_id}.git"


def branch_public(branch: Branch) -> BranchPublic:
    return BranchPublic(
        id=branch.id, name=branch.id, description=branch.description, is_default=branch.is_default
    )


def project_public(ctx: AppContext, project: Project, role: str | None) -> ProjectPublic:
    return ProjectPublic(
        id=project.id,
        name=project.name,
        description=project.description,
        git_url=git_url(ctx, project.id),
        auth_group=auth_group(project.id),
        branches=[branch_public(b) for b in project.branches],
        bucket=project.bucket,
        source_location=project.source_location,
        created_at=project.created_at,
        role=role,  # type: ignore[arg-type]
        storage_quota_bytes=project.storage_quota_bytes,
    )


def member_public(m: Membership) -> MemberPublic:
    return MemberPublic(
        username=m.user.username,
        display_name=m.user.display_name,
        role=m.role,  # type: ignore[arg-type]
        added_at=m.created_at,
    )


def project_created(ctx: AppContext, created: CreatedProject) -> ProjectCreated:
    """A new project with its first key (the secret shown once, never stored)."""
    project, key, storage = created.project, created.key, ctx.providers.storage
    return ProjectCreated(
        id=project.id,
        name=project.name,
        auth_group=auth_group(project.id),
        git_url=git_url(ctx, project.id),
        bucket=project.bucket,
        credentials=S3Credentials(
            access_key=key.access_key,
            secret_key=key.secret_key,
            endpoint=storage.endpoint_url,
            bucket=key.bucket,
            region=storage.region,
        ),
    )
