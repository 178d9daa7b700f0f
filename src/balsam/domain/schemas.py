"""Shared base for API request models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Request bodies: camelCase aliases, unknown fields refused, strict types."""

    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", strict=True, serialize_by_alias=True
    )
