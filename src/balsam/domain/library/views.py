"""The API's view of knowledge libraries (database rows → public schemas)."""

from __future__ import annotations

from balsam.db.models import KnowledgeLibrary
from balsam.domain.library.schemas import KnowledgeLibraryPublic


def library_public(library: KnowledgeLibrary) -> KnowledgeLibraryPublic:
    return KnowledgeLibraryPublic(
        id=library.id,
        name=library.name,
        description=library.description,
        repository_url=library.repository_url,
        repository_friendly_url=library.repository_friendly_url,
        branch=library.branch or None,
        sync_status=library.sync_status,  # type: ignore[arg-type]
        last_synced_commit=library.last_synced_commit,
        last_synced_at=library.last_synced_at,
        sync_error=library.sync_error,
    )
