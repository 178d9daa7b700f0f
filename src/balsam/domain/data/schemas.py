"""Shapes of the data API (``/api/v1/projects/{id}/data``, ``/usage``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.schemas import ApiModel


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class DataItem(_Out):
    path: str = Field(description="The object's key in the project's bucket.")
    size: int
    modified_at: datetime = Field(alias="modifiedAt")
    uploaded_by: str | None = Field(
        alias="uploadedBy",
        description="Who wrote this version through Balsam; null for writes straight to "
        "S3 (a workspace's or project key).",
    )
    expires_at: datetime | None = Field(None, alias="expiresAt")


class DataListing(_Out):
    items: list[DataItem]
    prefixes: list[str] = Field(description="Folders directly under the prefix, ending in '/'.")
    next_after: str | None = Field(
        None, alias="nextAfter", description="More entries: pass as ?after= for the next page."
    )


class DataWritten(_Out):
    path: str
    version_id: str | None = Field(alias="versionId")
    size: int
    sha256: str


class DeletedItem(_Out):
    path: str
    deleted_at: datetime = Field(alias="deletedAt")
    version_id: str = Field(alias="versionId", description="The version to restore.")
    size: int = Field(description="That version's size.")


class DeletedListing(_Out):
    items: list[DeletedItem] = Field(description="Deleted objects under the prefix, by path.")
    truncated: bool = Field(False, description="There are more than shown.")


class DataVersion(_Out):
    version_id: str = Field(alias="versionId")
    size: int
    modified_at: datetime = Field(alias="modifiedAt")
    uploaded_by: str | None = Field(alias="uploadedBy")
    deleted: bool = Field(description="A delete marker: the object was deleted then.")
    current: bool = Field(description="The key's current entry.")


class DataVersions(_Out):
    versions: list[DataVersion]


class Provenance(_Out):
    path: str
    version_id: str | None = Field(alias="versionId")
    size: int
    modified_at: datetime = Field(alias="modifiedAt")
    content_type: str | None = Field(alias="contentType")
    uploaded_by: str | None = Field(alias="uploadedBy")
    uploaded_at: datetime | None = Field(alias="uploadedAt")
    sha256: str | None = None
    source: str | None = Field(
        None, description="'upload', 'restore of <versionId>', or where it was imported from."
    )


class PreviewColumn(_Out):
    name: str
    type: str = Field(description="integer, double, string, ... (Parquet: Arrow's type).")


class DataPreview(_Out):
    kind: str = Field(description="csv, jsonl, parquet, excel, text, or none (download only).")
    size: int
    columns: list[PreviewColumn] = Field(default_factory=list)
    rows: list[list[str | None]] = Field(
        default_factory=list, description="The first rows (at most 100), values as text."
    )
    total_rows: int | None = Field(None, alias="totalRows", description="Parquet: all rows.")
    truncated: bool = Field(False, description="There is more than shown.")
    text: str | None = Field(None, description="Text files: the beginning.")
    delimiter: str | None = Field(None, description="CSV: the column separator found.")
    error: str | None = Field(None, description="Why no rows could be shown.")
    sheets: list[str] | None = Field(
        None, description="Excel: the workbook's sheets (the first is shown)."
    )


class RestoreRequest(ApiModel):
    version_id: str = Field(alias="versionId", min_length=1, max_length=128)


class MoveRequest(ApiModel):
    to: str = Field(
        min_length=1,
        max_length=4096,
        description="The new path; a folder (ending in '/') moves to a folder path.",
    )


class Moved(_Out):
    path: str
    to: str
    objects: int = Field(description="How many objects moved.")


class PrefixUsage(_Out):
    prefix: str = Field(description="A top-level folder: a branch's ('main/'), 'tmp/', ...")
    bytes: int
    objects: int


class DataUsage(_Out):
    prefixes: list[PrefixUsage]
    bytes: int
    objects: int
    storage_quota_bytes: int | None = Field(
        None, alias="storageQuotaBytes", description="The project's quota; null: none."
    )


class UploadStart(ApiModel):
    path: str = Field(min_length=1, max_length=4096, description="Where the object goes.")
    size: int = Field(ge=0, le=5 * 1024**4, description="The object's size in bytes.")
    content_type: str | None = Field(None, alias="contentType", max_length=200)
    expires_in_days: int | None = Field(
        None, alias="expiresInDays", ge=1, le=3650, description="Only under tmp/."
    )


class UploadPart(_Out):
    number: int
    size: int


class UploadState(_Out):
    id: str
    path: str
    size: int
    part_size: int = Field(
        alias="partSize",
        description="Every part but the last is this long; the last holds the rest.",
    )
    parts_total: int = Field(alias="partsTotal", description="Parts the object is cut into.")
    parts: list[UploadPart] = Field(description="The parts received, by number.")
    received: int = Field(description="Bytes received in those parts.")
    created_at: datetime = Field(alias="createdAt")
    expires_in_days: int | None = Field(None, alias="expiresInDays")


class UploadList(_Out):
    uploads: list[UploadState]
