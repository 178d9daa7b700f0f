"""Shared base for API request models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class ApiModel(BaseModel):
    """Request bodies: camelCase aliases, unknown fields refused, strict types,
    and no NUL characters (PostgreSQL can neither store nor compare them)."""

    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", strict=True, serialize_by_alias=True
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
