"""Shapes of the import API (``/api/v1/projects/{id}/imports``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from balsam.domain.schemas import ApiModel

ImportState = Literal["queued", "running", "succeeded", "failed"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ImportCreate(ApiModel):
    """Either ``url``, or ``connection`` and ``query``."""

    url: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="An http(s) URL without credentials, on a public address (or a host "
        "the installation allows in BALSAM_SOURCE_PRIVATE_HOSTS).",
    )
    connection: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="The name of one of the project's PostgreSQL data connections.",
    )
    query: str | None = Field(
        None,
        min_length=1,
        max_length=100_000,
        description="One SQL query, run read-only on ``connection``; its result is stored "
        "as Parquet.",
    )
    target: str = Field(
        min_length=1,
        max_length=1024,
        description="The object's path in the project's bucket, e.g. 'main/raw/file.csv'.",
    )
    expires_in_days: int | None = Field(
        None,
        alias="expiresInDays",
        ge=1,
        le=3650,
        description="Only under tmp/: days until it expires (default storage.tmp_days).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImportCreate:
        partial = (self.connection is None) != (self.query is None)
        by_query = self.connection is not None and self.query is not None
        if partial or (self.url is not None) == by_query:
            raise ValueError("give either url, or connection and query")
        return self


class ImportPublic(_Out):
    id: str
    state: ImportState = Field(description="queued, running, succeeded or failed.")
    url: str | None = Field(None, description="The URL fetched (a URL import).")
    connection: str | None = Field(None, description="The data connection (a query import).")
    query: str | None = Field(None, description="The query run (a query import).")
    target: str
    error: str | None = Field(None, description="Why it failed (state failed).")
    size: int | None = Field(None, description="Bytes imported (state succeeded).")
    sha256: str | None = Field(None, description="SHA-256 of what was imported.")
    version_id: str | None = Field(None, alias="versionId")
    created_at: datetime = Field(alias="createdAt")
    created_by: str = Field(alias="createdBy")
    started_at: datetime | None = Field(None, alias="startedAt")
    finished_at: datetime | None = Field(None, alias="finishedAt")


class ImportList(_Out):
    items: list[ImportPublic] = Field(description="Newest first.")
