"""Running imports: claiming a queued one and streaming its source into the bucket.

One import runs as: claim (``queued`` → ``running``, with this process's name, in one
conditional update, so two workers never take the same) → fetch (:mod:`.fetch`: every
hop checked, limits on size and time) → a streaming write to the bucket
(:meth:`~.service.DataService.begin_write`: parts of 8 MiB, SHA-256 and size counted on
the way, nothing visible until completed; the multipart upload's id is recorded on the
row as soon as there is one) → provenance recorded (the source is the URL) →
``succeeded``. Any failure aborts the write, so nothing partial is left, and ends in
``failed`` with the reason in ``error``. Each outcome is audited (``data.import``).

The row is its own crash journal: ``running`` with the process's name and, once there
is one, the multipart upload's id; :mod:`.import_recovery` settles the rows of processes
that died.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import IO, Any, cast

from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import DataImport, User, utcnow
from balsam.domain.data.connections.service import ConnectionService
from balsam.domain.data.fetch import FetchFailed, FetchLimits, fetch
from balsam.domain.data.imports import audit_import, source_of
from balsam.domain.data.service import DataService, DataWrite
from balsam.domain.identity.service import Actor
from balsam.domain.journal import crash_point
from balsam.domain.queue_worker import claim_oldest, claim_row
from balsam.errors import BalsamError

log = logging.getLogger(__name__)

#: The error of an import its process did not live to finish.
INTERRUPTED = "Balsam stopped while this import ran; start it again."


def claim_next(ctx: AppContext) -> str | None:
    """Take the oldest queued import whose user has none running (one user's slow
    imports must not hold every worker); its id, or None."""
    return claim_oldest(ctx, DataImport)


def claim(ctx: AppContext, import_id: str) -> bool:
    """Take ``import_id`` for this process if it is still queued."""
    return claim_row(ctx, DataImport, import_id)


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
        if row.connection is not None and row.query is not None:
            write = _begin(ctx, actor, row, "application/vnd.apache.parquet")
            # A raw stream: what pyarrow's writer needs of a file (write, tell).
            sink = cast(IO[bytes], _IntoWrite(ctx, row, write, cancelled))
            ConnectionService(ctx).query_to_parquet(
                actor, row.project_id, row.connection, row.query, sink
            )
        else:
            with fetch(row.url or "", limits) as fetched:
                write = _begin(ctx, actor, row, fetched.content_type)
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
    finished(
        ctx,
        row,
        "succeeded",
        size=written.size,
        sha256=written.sha256,
        version_id=written.version_id,
    )
    audit_import(ctx, row, "success", state="succeeded", size=written.size, sha256=written.sha256)


def _begin(ctx: AppContext, actor: Actor, row: DataImport, content_type: str | None) -> DataWrite:
    return DataService(ctx).begin_write(
        actor,
        row.project_id,
        row.target,
        content_type,
        expires_in_days=row.expires_in_days,
        source=source_of(row),
    )


class _IntoWrite(io.RawIOBase):
    """A write-only file whose bytes go into ``write`` as they come (a query's Parquet
    is written into it), parts sent as they fill."""

    def __init__(
        self, ctx: AppContext, row: DataImport, write: DataWrite, cancelled: Callable[[], bool]
    ) -> None:
        self._ctx, self._row, self._write, self._cancelled = ctx, row, write, cancelled
        self._at = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def write(self, data: Any) -> int:
        if self._cancelled():
            raise FetchFailed(INTERRUPTED)
        chunk = bytes(data)
        if self._write.add(chunk):
            self._write.flush()
            _note_upload(self._ctx, self._row, self._write)
        self._at += len(chunk)
        return len(chunk)


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
    finished(ctx, row, "failed", error=error[:2000])
    audit_import(ctx, row, "failure", state="failed", error=error[:500])


def finished(ctx: AppContext, row: DataImport, state: str, **values: object) -> None:
    """Put ``row`` in its final ``state`` (with ``values``: size, error, ...)."""
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(DataImport)
            .where(DataImport.id == row.id)
            .values(state=state, finished_at=utcnow(), process=None, upload_id=None, **values)
        )
