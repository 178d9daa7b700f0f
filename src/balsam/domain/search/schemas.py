"""Search result shapes (camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.search.documents import Kind


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class SearchHit(_Out):
    kind: Kind
    library_id: str = Field(alias="libraryId")
    path: str = Field(description="The file's path inside the library repository.")
    title: str = Field(
        description="Plain text: the first `# ` heading, the template's name, "
        "or the file name. Escape it before putting it in HTML."
    )
    snippet: str = Field(
        description="HTML-safe text around the first match; the matched "
        "words are wrapped in <mark>, everything else is escaped."
    )


class SearchResults(_Out):
    results: list[SearchHit]
    total: int = Field(description="How many documents match (results holds the best few).")
