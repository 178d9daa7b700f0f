"""The API's view of users and tokens (database rows → public schemas)."""

from __future__ import annotations

from balsam.db.models import ApiToken, User
from balsam.domain.identity.schemas import TokenPublic, UserPublic


def user_public(user: User) -> UserPublic:
    return UserPublic(
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        is_admin=user.is_admin,
        is_active=user.is_active,
        created_at=user.created_at,
    )


def token_public(token: ApiToken) -> TokenPublic:
    return TokenPublic(
        id=token.id,
        name=token.name,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
    )
