"""Request and response shapes of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from balsam.domain.identity.values import check_display_name, check_email
from balsam.domain.schemas import ApiModel

#: An e-mail address (or ""): it becomes the author of the user's commits, in
#: workspaces' git config among others, so its syntax is checked here.
Email = Annotated[str, AfterValidator(check_email)]
#: A name shown to people and written into git commits: no control characters.
DisplayName = Annotated[str, AfterValidator(check_display_name)]


class UserCreate(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    email: Email = Field("", max_length=254)
    display_name: DisplayName = Field("", max_length=200, alias="displayName")
    is_admin: bool = Field(False, alias="isAdmin")


class UserUpdate(ApiModel):
    display_name: DisplayName | None = Field(None, max_length=200, alias="displayName")
    email: Email | None = Field(None, max_length=254)
    is_active: bool | None = Field(None, alias="isActive")
    is_admin: bool | None = Field(None, alias="isAdmin")


class UserPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    username: str
    display_name: str = Field(alias="displayName")
    email: str
    is_admin: bool = Field(alias="isAdmin")
    is_active: bool = Field(alias="isActive")
    created_at: datetime = Field(alias="createdAt")


class UserList(BaseModel):
    users: list[UserPublic]
    total: int


class TokenCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int = Field(30, ge=1, alias="expiresInDays")


class TokenPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    name: str
    created_at: datetime = Field(alias="createdAt")
    expires_at: datetime = Field(alias="expiresAt")
    last_used_at: datetime | None = Field(None, alias="lastUsedAt")


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself; shown once, never again.")


class LoginRequest(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    username: str
    csrf_token: str = Field(alias="csrfToken", description="Send as X-CSRF-Token on writes.")
    expires_at: datetime = Field(alias="expiresAt")


class UserGroups(BaseModel):
    """A user's project groups (each project's ``authGroup``), for an identity
    provider to put into its tokens."""

    groups: list[str]
