"""Knowledge-library shapes: upstream's ``KnowledgeLibrary`` plus Balsam's extensions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.schemas import ApiModel

SyncStatus = Literal["pending", "syncing", "ok", "failed"]
RenderKind = Literal["markdown", "notebook", "code", "link", "image", "binary"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class LibraryCreate(ApiModel):
    name: str = Field(max_length=10_000)
    description: str = Field("", max_length=10_000)
    repository_url: str = Field(
        alias="repositoryUrl",
        max_length=2000,
        description="An https://, http:// or file:// git URL.",
    )
    branch: str | None = Field(
        None,
        max_length=1000,
        description="The branch to serve; omitted or null: the repository's default "
        "branch (its HEAD, followed at each sync), whatever it is called.",
    )
    repository_friendly_url: str | None = Field(
        None,
        alias="repositoryFriendlyUrl",
        max_length=2000,
        description="An http(s) page where people can browse the repository.",
    )


class LibraryUpdate(ApiModel):
    """Only the fields given change; a changed URL or branch triggers a sync. A
    ``branch`` of null goes back to the repository's default branch."""

    name: str | None = Field(None, max_length=10_000)
    description: str | None = Field(None, max_length=10_000)
    repository_url: str | None = Field(None, alias="repositoryUrl", max_length=2000)
    branch: str | None = Field(None, max_length=1000)
    repository_friendly_url: str | None = Field(
        None, alias="repositoryFriendlyUrl", max_length=2000
    )


class KnowledgeLibraryPublic(_Out):
    id: str
    name: str
    description: str | None = None
    repository_url: str = Field(alias="repositoryUrl")
    repository_friendly_url: str | None = Field(None, alias="repositoryFriendlyUrl")
    branch: str | None = Field(
        description="The branch served; null: the repository's default branch."
    )
    sync_status: SyncStatus = Field(alias="syncStatus")
    last_synced_commit: str | None = Field(
        None, alias="lastSyncedCommit", description="The commit readers are served."
    )
    last_synced_at: datetime | None = Field(None, alias="lastSyncedAt")
    sync_error: str | None = Field(
        None, alias="syncError", description="Why the latest sync failed, if it did."
    )


class SyncAccepted(_Out):
    id: str
    sync_status: SyncStatus = Field(alias="syncStatus")


class LibraryFile(_Out):
    """A file of the library, with where to fetch and render it."""

    id: str
    path: str
    name: str
    size: int | None = None
    content_url: str = Field(alias="contentUrl")
    render_url: str = Field(alias="renderUrl")


class Article(LibraryFile):
    title: str = Field(description="The first '# ' heading, else the file name.")
    category: str = Field(description="Folder path below Articles/ ('' at the top).")


class Resource(_Out):
    name: str
    path: str
    readme: LibraryFile | None = None
    files: list[LibraryFile]


class ResourceCatalog(_Out):
    resources: list[Resource]
    shared_files: list[LibraryFile] = Field(
        alias="sharedFiles", description="Library-wide files directly in Resources/."
    )


class Template(_Out):
    id: str
    path: str
    name: str
    git: str | None = None
    html: str | None = Field(None, description="An http(s) page about the template.")
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    error: str | None = Field(None, description="Why the file could not be read, if so.")


class ExampleVariant(_Out):
    name: str
    path: str
    readme: LibraryFile | None = None


class ExampleProject(_Out):
    name: str
    path: str
    readme: LibraryFile | None = None
    files: list[LibraryFile]
    variants: list[ExampleVariant] = Field(
        description="Sub-folders with a README of their own (e.g. one per language)."
    )


class ExampleCatalog(_Out):
    readme: LibraryFile | None = None
    examples: list[ExampleProject]


class Rendered(_Out):
    path: str
    kind: RenderKind
    html: str = Field(description="Sanitised HTML; empty for binaries.")
    download_url: str | None = Field(None, alias="downloadUrl")
    url: str | None = Field(None, description="The target of a .url link (http/https only).")
