"""Running imports: claiming a queued one, streaming its source into the bucket, and
failing those a crash interrupted.

One import runs as: claim (``queued`` → ``running``, with this process's name, in one
conditional update, so two workers never take the same) → fetch (:mod:`.fetch`: every
hop checked, limits on size and time) → a streaming write to the bucket
(:meth:`~.service.DataService.begin_write`: parts of 8 MiB, SHA-256 and size counted on
the way, nothing visible until completed; the multipart upload's id is recorded on the
row as soon as there is one) → provenance recorded (the source is the URL) →
``succeeded``. Any failure aborts the write, so nothing partial is left, and ends in
``failed`` with the reason in ``error``. Each outcome is audited (``data.import``).

The row is its own crash journal: a ``running`` row whose process is gone
(:func:`~balsam.domain.journal.gone`) is repaired by :func:`fail_interrupted`, run by
:func:`~balsam.domain.recovery.recover` at every start and periodically: if the object
was completed and recorded, the import succeeded; otherwise its multipart upload is
aborted and the import failed (the user starts it again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import DataImport, DataObject, DataUpload, Project, User, utcnow
from balsam.domain.data.fetch import FetchFailed, FetchLimits, fetch
from balsam.domain.data.imports import audit_import
from balsam.domain.data.service import DataService, DataWrite
from balsam.domain.identity.service import Actor
from balsam.domain.journal import crash_point, gone, this_process
from balsam.errors import BalsamError

log = logging.getLogger(__name__)

#: The error of an import its process did not live to finish.
INTERRUPTED = "Balsam stopped while this import ran; start it again."
#: Clock difference allowed between Balsam and the storage server when looking for the
#: multipart upload of an interrupted import that had not recorded its id yet.
_SKEW = timedelta(seconds=30)


def claim_next(ctx: AppContext) -> str | None:
    """Take the oldest queued import for this process; its id, or None."""
    while True:
        with ctx.sessions() as session:
            import_id = session.scalar(
                select(DataImport.id)
                .where(DataImport.state == "queued")
                .order_by(DataImport.created_at, DataImport.id)
                .limit(1)
            )
        if import_id is None:
            return None
        if claim(ctx, import_id):
            return import_id


def claim(ctx: AppContext, import_id: str) -> bool:
    """Take ``import_id`` for this process if it is still queued."""
    with ctx.sessions() as session, session.begin():
        taken = session.execute(
            update(DataImport)
            .where(DataImport.id == import_id, DataImport.state == "queued")
            .values(state="running", process=this_process(), started_at=utcnow())
        )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def run_import(
    ctx: AppContext, import_id: str, cancelled: Callable[[], bool] = lambda: False
) -> None:
    """Run a claimed import to its end (``succeeded`` or ``failed``); never raises for
    what the source, the storage or the rules refuse."""
    with ctx.sessions() as session:
        row = session.get(DataImport, import_id)
        if row is None:  # its project was deleted meanwhile
            return
        session.expunge(row)
    try:
        _transfer(ctx, row, cancelled)
    except (FetchFailed, BalsamError) as exc:
        _failed(ctx, row, str(exc))
    except Exception:
        log.exception("import %s failed unexpectedly", row.id)
        _failed(ctx, row, "The import failed (an internal error); see Balsam's log.")


def _transfer(ctx: AppContext, row: DataImport, cancelled: Callable[[], bool]) -> None:
    """Fetch and write; the write is aborted if anything fails."""
    settings = ctx.settings.imports
    limits = FetchLimits(
        max_bytes=settings.max_bytes,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        deadline=time.monotonic() + settings.total_seconds,
        max_redirects=settings.max_redirects,
        private_hosts=ctx.settings.source_private_hosts,
    )
    actor = _creator(ctx, row)
    write: DataWrite | None = None
    try:
        with fetch(row.url, limits) as fetched:
            write = DataService(ctx).begin_write(
                actor,
                row.project_id,
                row.target,
                fetched.content_type,
                expires_in_days=row.expires_in_days,
                source=row.url,
            )
            for chunk in fetched.chunks:
                if cancelled():
                    raise FetchFailed(INTERRUPTED)
                if write.add(chunk):
                    write.flush()
                    _note_upload(ctx, row, write)
        written = write.finish()  # the source's connection closed: only storage now
    except BaseException:
        if write is not None:
            write.abort()
        raise
    _finished(
        ctx,
        row,
        "succeeded",
        size=written.size,
        sha256=written.sha256,
        version_id=written.version_id,
    )
    audit_import(ctx, row, "success", state="succeeded", size=written.size, sha256=written.sha256)


def _creator(ctx: AppContext, row: DataImport) -> Actor:
    """Who asked for the import, as they are now (their rights are checked again)."""
    with ctx.sessions() as session:
        user = session.scalar(select(User).where(User.username == row.created_by))
    if user is None or not user.is_active:
        raise FetchFailed("The user who asked for this import is no longer active.")
    return Actor(
        user_id=user.id, username=user.username, is_admin=user.is_admin, request_id=row.request_id
    )


def _note_upload(ctx: AppContext, row: DataImport, write: DataWrite) -> None:
    """Record the multipart upload's id the first time there is one."""
    if row.upload_id is None and write.upload_id is not None:
        row.upload_id = write.upload_id
        with ctx.sessions() as session, session.begin():
            session.execute(
                update(DataImport).where(DataImport.id == row.id).values(upload_id=write.upload_id)
            )
        crash_point("data.import", "part")  # fault injection: tests/cli/test_import_crash.py


def _failed(ctx: AppContext, row: DataImport, error: str) -> None:
    _finished(ctx, row, "failed", error=error[:2000])
    audit_import(ctx, row, "failure", state="failed", error=error[:500])


def _finished(ctx: AppContext, row: DataImport, state: str, **values: object) -> None:
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(DataImport)
            .where(DataImport.id == row.id)
            .values(state=state, finished_at=utcnow(), process=None, upload_id=None, **values)
        )


# -- crash recovery ---------------------------------------------------------------------


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
        _finished(
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
    _finished(ctx, row, "failed", error=INTERRUPTED)
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
                DataObject.source == row.url,
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
