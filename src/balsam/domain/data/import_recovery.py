"""Settling imports a crash interrupted: a ``running`` row whose process is gone
(:func:`~balsam.domain.journal.gone`) is repaired by :func:`fail_interrupted`, run by
:func:`~balsam.domain.recovery.recover` at every start (before anything is served) and
periodically. If its object was completed and recorded, the import succeeded; otherwise
its multipart upload is aborted and the import failed (the user starts it again). Each
repair is audited (``data.import``, ``interrupted``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import DataImport, DataObject, DataUpload, Project
from balsam.domain.data.import_runs import INTERRUPTED, finished
from balsam.domain.data.imports import audit_import, source_of
from balsam.domain.journal import gone
from balsam.errors import BalsamError

log = logging.getLogger(__name__)

#: Clock difference allowed between Balsam and the storage server when looking for the
#: multipart upload of an interrupted import that had not recorded its id yet.
_SKEW = timedelta(seconds=30)


def fail_interrupted(ctx: AppContext) -> int:
    """Settle every running import whose process is gone: succeeded if its object was
    completed and recorded, else failed with its upload aborted. How many."""
    with ctx.sessions() as session:
        rows = session.scalars(select(DataImport).where(DataImport.state == "running")).all()
        session.expunge_all()
    settled = 0
    for row in rows:
        if row.process is not None and not gone(row.process):
            continue
        try:
            _settle(ctx, row)
        except BalsamError as exc:  # storage down: the next round retries
            log.warning("could not settle interrupted import %s: %s", row.id, exc)
            continue
        settled += 1
    return settled


def _settle(ctx: AppContext, row: DataImport) -> None:
    recorded = _recorded(ctx, row)
    if recorded is not None:
        finished(
            ctx,
            row,
            "succeeded",
            size=recorded.size,
            sha256=recorded.sha256,
            version_id=recorded.version_id or None,
        )
        audit_import(ctx, row, "success", state="succeeded", interrupted=True)
        return
    bucket = _bucket(ctx, row.project_id)
    aborted = _abort_uploads(ctx, bucket, row) if bucket is not None else 0
    finished(ctx, row, "failed", error=INTERRUPTED)
    audit_import(
        ctx,
        row,
        "failure",
        state="failed",
        interrupted=True,
        abortedUploads=aborted,
        repairedBy="balsam (crash recovery)",
    )
    log.info(
        "failed interrupted import %s of %s (%d upload(s) aborted)", row.id, row.project_id, aborted
    )


def _recorded(ctx: AppContext, row: DataImport) -> DataObject | None:
    """The provenance record of the import's object, if it was completed."""
    with ctx.sessions() as session:
        found = session.scalars(
            select(DataObject)
            .where(
                DataObject.project_id == row.project_id,
                DataObject.path == row.target,
                DataObject.source == source_of(row),
                DataObject.created_at >= (row.started_at or row.created_at),
            )
            .order_by(DataObject.id.desc())
        ).first()
        if found is not None:
            session.expunge(found)
        return found


def _bucket(ctx: AppContext, project_id: str) -> str | None:
    with ctx.sessions() as session:
        project = session.get(Project, project_id)
        return project.bucket if project is not None else None


def _abort_uploads(ctx: AppContext, bucket: str, row: DataImport) -> int:
    """Abort the import's multipart upload: the one recorded, or, if it died before
    recording it, those of its target begun since it started that no other upload or
    import of Balsam's knows of."""
    objects = ctx.providers.storage.objects
    if row.upload_id is not None:
        objects.abort_upload(bucket, row.target, row.upload_id)
        return 1
    since = (row.started_at or row.created_at) - _SKEW
    with ctx.sessions() as session:
        known = set(session.scalars(select(DataUpload.upload_id))) | {
            u for u in session.scalars(select(DataImport.upload_id)) if u
        }
    aborted = 0
    for upload_id, initiated in objects.uploads_in_progress(bucket, row.target):
        if initiated >= since and upload_id not in known:
            objects.abort_upload(bucket, row.target, upload_id)
            aborted += 1
    return aborted
