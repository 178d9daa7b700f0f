"""Credential rows → the public shapes the API and the portal show."""

from __future__ import annotations

from balsam.context import AppContext
from balsam.db.models import Credential
from balsam.domain.projects.schemas import CredentialCreated, CredentialPublic
from balsam.providers.storage.base import ScopedKey


def credential_public(
    ctx: AppContext, row: Credential, owner: str, bucket: str
) -> CredentialPublic:
    return CredentialPublic(
        access_key=row.access_key,
        name=row.name,
        owner=owner,
        bucket=bucket,
        endpoint=ctx.providers.storage.endpoint_url,
        created_at=row.created_at,
    )


def credential_created(
    ctx: AppContext, row: Credential, key: ScopedKey, owner: str
) -> CredentialCreated:
    """The new key with its secret: shown once, never stored."""
    storage = ctx.providers.storage
    return CredentialCreated(
        access_key=key.access_key,
        secret_key=key.secret_key,
        name=row.name,
        owner=owner,
        bucket=key.bucket,
        endpoint=storage.endpoint_url,
        region=storage.region,
        created_at=row.created_at,
    )
