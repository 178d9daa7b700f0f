"""Branch marker objects: upstream creates one per branch, so that a branch's data
prefix exists (and lists) from the start."""

from __future__ import annotations

import hashlib

from balsam.context import AppContext
from balsam.db.models import DataObject


def marker_key(branch: str) -> str:
    """Upstream's per-branch marker object: the prefix exists from the start."""
    return f"{branch}/readme.txt"


def marker_body(project_name: str, branch: str) -> bytes:
    return f"Data of project '{project_name}', branch '{branch}'.\n".encode()


#: The provenance source of a marker (Balsam writes it as the branch is made).
MARKER_SOURCE = "branch created"


def marker_provenance(
    ctx: AppContext, project_id: str, bucket: str, branch: str, body: bytes, username: str
) -> DataObject | None:
    """The provenance row of the marker just written (None if storage lost it): Balsam
    wrote it, for ``username`` creating the branch."""
    info = ctx.providers.storage.objects.head(bucket, marker_key(branch))
    if info is None:
        return None
    return DataObject(
        project_id=project_id,
        path=marker_key(branch),
        version_id=info.version_id or "",
        size=info.size,
        sha256=hashlib.sha256(body).hexdigest(),
        uploaded_by=username,
        source=MARKER_SOURCE,
    )
