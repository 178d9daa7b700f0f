"""Resumable uploads: a large object sent in numbered parts over as many requests (and
connections, and Balsam restarts) as it takes, then completed.

The parts live on the storage server, in its multipart upload, from the first part to
completion: nothing is visible in the bucket before :meth:`UploadService.complete`,
and Balsam holds one part per request in memory at most. A row per upload
(:class:`~balsam.db.models.DataUpload`) lets any Balsam process continue it; only the
member who started it may (anyone else is told there is no such upload). The client
asks :meth:`UploadService.state` which parts arrived and sends the others again.

An upload is cut into ``partsTotal`` parts of ``partSize`` bytes (the last holds the
rest); each part must be exactly that long. Completing it reads the object back once
for its SHA-256 (the parts may have arrived in any order, over any connections), then
records its provenance as an upload through the data API does. Uploads left unfinished
for ``storage.upload_hours`` are aborted by the hourly sweep (:func:`sweep_uploads`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import NoReturn

from sqlalchemy import delete, select

from balsam.context import AppContext
from balsam.db.models import DataImport, DataUpload, DataUploadPart, utcnow
from balsam.domain.data.retention import project_buckets, sweep_buckets
from balsam.domain.data.schemas import (
    DataWritten,
    UploadList,
    UploadPart,
    UploadStart,
    UploadState,
)
from balsam.domain.data.service import (
    DataProject,
    DataService,
    check_path,
    check_writable,
    provenance_metadata,
    quota_exceeded,
)
from balsam.domain.identity.service import Actor
from balsam.errors import N_, Conflict, InvalidInput, NotFound, ProviderError
from balsam.providers.storage.objects import (
    PART_SIZE,
    UPLOAD_GONE,
    Part,
    S3ObjectStore,
    multipart_etag,
)

log = logging.getLogger(__name__)

#: S3 allows at most this many parts in an upload.
MAX_PARTS = 10_000
#: Parts never grow beyond this (each is held in memory while it arrives): objects of
#: up to 335 GB.
MAX_PART_SIZE = 32 * 1024 * 1024


def part_size_for(size: int) -> int:
    """The part size for an object of ``size`` bytes: 8 MiB, or more (in whole MiB) when
    that would take more than :data:`MAX_PARTS` parts; InvalidInput past 335 GB."""
    mib = 1024 * 1024
    needed = max(PART_SIZE, math.ceil(size / MAX_PARTS / mib) * mib)
    if needed > MAX_PART_SIZE:
        raise InvalidInput(
            N_("An upload holds at most %(most)s bytes."),
            params={"most": MAX_PART_SIZE * MAX_PARTS},
        )
    return needed


def expected_length(upload: DataUpload, number: int) -> int:
    """How long part ``number`` of ``upload`` must be (InvalidInput if no such part)."""
    total = _parts_total(upload)
    if not 1 <= number <= total:
        raise InvalidInput(N_("This upload has parts 1 to %(total)s."), params={"total": total})
    if number < total:
        return upload.part_size
    return upload.size - upload.part_size * (total - 1)


def _parts_total(upload: DataUpload) -> int:
    return math.ceil(upload.size / upload.part_size)


class _Digest:
    """The SHA-256 of an upload's first parts, fed in order as they are stored."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.next = 1  # the part the hash waits for
        self.offset = 0  # bytes hashed
        self.receiving: set[int] = set()  # parts being received by this process
        self.valid = True  # False once a hashed part was sent again
        self.hashing: int | None = None  # the part being hashed now (without the lock)


class _Digests:
    """Per upload, in this process: the whole object's SHA-256 as far as its parts
    arrived in order, so completing rarely has to read the object back. A part whose
    predecessor is still arriving here waits for it (at most :data:`WAIT` seconds);
    one whose predecessor is not (another process has it, or it failed) is not
    hashed, and completion reads the object back from where the hash stopped."""

    WAIT = 10.0
    #: Uploads followed at most (the oldest are forgotten: their completion reads back).
    MOST = 10_000

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._digests: dict[str, _Digest] = {}

    def receiving(self, upload_id: str, number: int) -> None:
        with self._lock:
            if upload_id not in self._digests and len(self._digests) >= self.MOST:
                del self._digests[next(iter(self._digests))]  # abandoned, most likely
            self._digests.setdefault(upload_id, _Digest()).receiving.add(number)

    def stored(self, upload_id: str, number: int, data: bytes | bytearray | None) -> None:
        """Part ``number`` is stored (``data``) or failed (None): hash it in turn."""
        with self._lock:
            digest = self._digests.get(upload_id)
            if digest is None:
                return
            turn = False
            if data is not None and digest.valid:
                self._lock.wait_for(
                    lambda: (
                        digest.hashing is None
                        and (digest.next >= number or digest.next not in digest.receiving)
                    ),
                    timeout=self.WAIT,
                )
                if number < digest.next:
                    digest.valid = False  # sent again: its bytes may differ from those hashed
                turn = digest.valid and digest.next == number and digest.hashing is None
            if not turn:
                digest.receiving.discard(number)
                self._lock.notify_all()
                return
            digest.hashing = number
        # Hashed without the lock (milliseconds per part): only the part whose turn it
        # is touches the hash, and the others' parts come and go meanwhile.
        assert data is not None
        digest.hash.update(data)
        with self._lock:
            digest.next += 1
            digest.offset += len(data)
            digest.hashing = None
            digest.receiving.discard(number)
            self._lock.notify_all()

    def take(self, upload_id: str) -> _Digest | None:
        with self._lock:
            digest = self._digests.pop(upload_id, None)
        return digest if digest is not None and digest.valid else None

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._digests.pop(upload_id, None)


_DIGESTS = _Digests()


class PartReceipt:
    """One part on its way in (from :meth:`UploadService.receive_part`)."""

    def __init__(self, ctx: AppContext, bucket: str, row: DataUpload, number: int) -> None:
        self._ctx, self._bucket, self._row, self.number = ctx, bucket, row, number
        self._objects = ctx.providers.storage.objects
        #: How long the part must be.
        self.length = expected_length(row, number)

    def store(self, data: bytes | bytearray) -> UploadPart:
        """Store the part (InvalidInput unless it is :attr:`length` bytes long)."""
        row = self._row
        if len(data) != self.length:
            self.give_up()
            raise InvalidInput(
                N_("Part %(number)s must be %(size)s bytes long."),
                params={"number": self.number, "size": self.length},
            )
        try:
            with _gone_as_not_found(self._ctx, row):
                etag = self._objects.put_part(
                    self._bucket, row.path, row.upload_id, self.number, data
                )
            with self._ctx.sessions() as session, session.begin():
                session.execute(
                    delete(DataUploadPart).where(
                        DataUploadPart.upload_id == row.id, DataUploadPart.number == self.number
                    )
                )
                session.add(
                    DataUploadPart(upload_id=row.id, number=self.number, size=len(data), etag=etag)
                )
        except BaseException:
            self.give_up()
            raise
        _DIGESTS.stored(row.id, self.number, data)
        return UploadPart(number=self.number, size=len(data))

    def give_up(self) -> None:
        """The body did not arrive whole: nothing is stored."""
        _DIGESTS.stored(self._row.id, self.number, None)


class UploadService:
    """Resumable uploads into a project's bucket (members; each their own uploads)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.data = DataService(ctx)

    @property
    def _objects(self) -> S3ObjectStore:
        return self.ctx.providers.storage.objects

    def begin(self, actor: Actor, project_id: str, start: UploadStart) -> UploadState:
        """Start an upload of ``start.size`` bytes to ``start.path`` (checked against
        the path rules, tmp/'s expiry and the project's quota)."""
        path = check_path(start.path)
        check_writable(path)
        self.data.expiry_for(path, start.expires_in_days)  # refuses before anything exists
        part_size = part_size_for(start.size)
        project = self.data.access(actor, project_id, "data.write")
        self.data.require_room(project, start.size)
        upload_id = self._objects.begin_parts(
            project.bucket,
            path,
            content_type=(start.content_type or "application/octet-stream")[:200],
            metadata=provenance_metadata(actor.username, "upload"),
        )
        row = DataUpload(
            id=secrets.token_urlsafe(16),
            project_id=project.id,
            path=path,
            upload_id=upload_id,
            size=start.size,
            part_size=part_size,
            expires_in_days=start.expires_in_days,
            created_by=actor.username,
            created_at=utcnow(),
        )
        try:
            with self.ctx.sessions() as session, session.begin():
                session.add(row)
        except BaseException:
            self._objects.abort_upload(project.bucket, path, upload_id)
            raise
        return _state(row, {})

    def unfinished(self, actor: Actor, project_id: str) -> UploadList:
        """The caller's unfinished uploads into the project, oldest first."""
        project = self.data.access(actor, project_id, "data.read")
        with self.ctx.sessions() as session:
            rows = list(
                session.scalars(
                    select(DataUpload)
                    .where(
                        DataUpload.project_id == project.id,
                        DataUpload.created_by == actor.username,
                    )
                    .order_by(DataUpload.created_at)
                )
            )
        return UploadList(uploads=[_state(row, self._parts(row)) for row in rows])

    def state(self, actor: Actor, project_id: str, upload_id: str) -> UploadState:
        """The upload and the parts the storage server holds."""
        _, row = self._upload(actor, project_id, upload_id, "data.read")
        return _state(row, self._parts(row))

    def receive_part(
        self, actor: Actor, project_id: str, upload_id: str, number: int
    ) -> PartReceipt:
        """Before part ``number``'s body is read: how long it must be, and where it goes
        (:meth:`PartReceipt.store`, or :meth:`PartReceipt.give_up` when the body did not
        arrive whole)."""
        project, row = self._upload(actor, project_id, upload_id, "data.write")
        receipt = PartReceipt(self.ctx, project.bucket, row, number)
        _DIGESTS.receiving(row.id, number)
        return receipt

    def complete(self, actor: Actor, project_id: str, upload_id: str) -> DataWritten:
        """Make the object visible once every part is there (Conflict naming the
        missing ones otherwise); its version, size and SHA-256."""
        project, row = self._upload(actor, project_id, upload_id, "data.write")
        held = self._parts(row)
        total = _parts_total(row)
        missing = [n for n in range(1, total + 1) if n not in held]
        if missing:
            raise Conflict(
                N_("Parts are missing: %(parts)s."),
                params={"parts": _ranges(missing)},
                details={"missing": missing[:1000]},
            )
        # The quota again: others may have written while the parts arrived.
        room = self.data.room(project, besides=row.id)
        if room is not None and row.size > room:
            raise quota_exceeded(project)
        parts = [held[n] for n in range(1, total + 1)]
        version, etag = self._finish(project, row, parts)
        expected = multipart_etag(parts) if row.size else etag
        if expected is None:  # no way to tell which parts it holds: hash what it holds
            _DIGESTS.drop(row.id)
        elif etag != expected:
            self._completed_elsewhere(actor, project, row, version)
        sha256 = self._digest(project, row, version)
        with self.ctx.sessions() as session, session.begin():
            session.execute(delete(DataUpload).where(DataUpload.id == row.id))
        expires_at = self.data.expiry_for(row.path, row.expires_in_days)
        self.data.record(
            actor, project.id, row.path, version, row.size, sha256, "upload", expires_at
        )
        return DataWritten(path=row.path, version_id=version, size=row.size, sha256=sha256)

    def _completed_elsewhere(
        self, actor: Actor, project: DataProject, row: DataUpload, version: str | None
    ) -> NoReturn:
        """Someone with an S3 key for the bucket completed this upload first, with parts
        of their own (the storage server answers a second completion with their
        object): it is not recorded as the caller's, nor with their bytes' hash."""
        _DIGESTS.drop(row.id)
        with self.ctx.sessions() as session, session.begin():
            session.execute(delete(DataUpload).where(DataUpload.id == row.id))
        log.warning(
            "upload %s of %s by %s was completed outside Balsam with other parts "
            "(version %s): not recorded",
            row.id,
            row.path,
            actor.username,
            version,
        )
        raise Conflict(
            N_(
                "The upload was completed outside Balsam, with other parts than those "
                "sent here: what is stored at %(path)s is not recorded as yours. Upload "
                "the file again."
            ),
            params={"path": row.path},
        )

    def abort(self, actor: Actor, project_id: str, upload_id: str) -> None:
        """Drop the upload and every part sent."""
        project, row = self._upload(actor, project_id, upload_id, "data.write")
        self._objects.abort_upload(project.bucket, row.path, row.upload_id)
        _DIGESTS.drop(row.id)
        with self.ctx.sessions() as session, session.begin():
            session.execute(delete(DataUpload).where(DataUpload.id == row.id))

    # -- helpers ---------------------------------------------------------------------

    def _upload(
        self, actor: Actor, project_id: str, upload_id: str, action: str
    ) -> tuple[DataProject, DataUpload]:
        project = self.data.access(actor, project_id, action)
        with self.ctx.sessions() as session:
            row = session.get(DataUpload, upload_id)
        if row is None or row.project_id != project.id or row.created_by != actor.username:
            raise NotFound(N_("No upload '%(upload)s'."), params={"upload": upload_id})
        return project, row

    def _parts(self, row: DataUpload) -> dict[int, Part]:
        """The parts stored, as last sent."""
        with self.ctx.sessions() as session:
            stored = session.scalars(
                select(DataUploadPart).where(DataUploadPart.upload_id == row.id)
            )
            return {p.number: Part(p.number, p.size, p.etag) for p in stored}

    def _finish(
        self, project: DataProject, row: DataUpload, parts: list[Part]
    ) -> tuple[str | None, str]:
        """The object made visible: its version id and ETag ("" for an empty one)."""
        if row.size == 0:  # S3 wants at least one part: an empty object in one request
            self._objects.abort_upload(project.bucket, row.path, row.upload_id)
            version = self._objects.put(
                project.bucket,
                row.path,
                b"",
                content_type="application/octet-stream",
                metadata=provenance_metadata(row.created_by, "upload"),
            )
            return version, ""
        with _gone_as_not_found(self.ctx, row):
            done = self._objects.complete_parts(project.bucket, row.path, row.upload_id, parts)
        return done.version, done.etag

    def _digest(self, project: DataProject, row: DataUpload, version: str | None) -> str:
        """The object's SHA-256: hashed as its parts arrived, the rest (all, after a
        restart or parts out of order) read back from the object."""
        known = _DIGESTS.take(row.id)
        digest = known.hash if known is not None else hashlib.sha256()
        offset = known.offset if known is not None else 0
        if offset < row.size:
            opened = self._objects.open(
                project.bucket, row.path, version, byte_range=(offset, row.size - 1)
            )
            if opened is None:
                raise ProviderError("Object storage lost an object just completed.")
            for chunk in opened[1]:
                digest.update(chunk)
        return digest.hexdigest()


@contextlib.contextmanager
def _gone_as_not_found(ctx: AppContext, row: DataUpload) -> Iterator[None]:
    """An upload the storage server no longer has (aborted by the sweep, or by the
    server itself) is forgotten and answered as NotFound."""
    try:
        yield
    except ProviderError as exc:
        if exc.details.get("code") != UPLOAD_GONE:
            raise
        with ctx.sessions() as session, session.begin():
            session.execute(delete(DataUpload).where(DataUpload.id == row.id))
        raise NotFound(N_("No upload '%(upload)s'."), params={"upload": row.id}) from exc


def _state(row: DataUpload, held: dict[int, Part]) -> UploadState:
    parts = [UploadPart(number=n, size=p.size) for n, p in sorted(held.items())]
    return UploadState(
        id=row.id,
        path=row.path,
        size=row.size,
        part_size=row.part_size,
        parts_total=_parts_total(row),
        parts=parts,
        received=sum(p.size for p in parts),
        created_at=row.created_at,
        expires_in_days=row.expires_in_days,
    )


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7`` (at most 20 runs named)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    named = [f"{a}-{b}" if a != b else str(a) for a, b in runs[:20]]
    return ", ".join(named) + (", ..." if len(runs) > 20 else "")


def sweep_uploads(ctx: AppContext) -> int:
    """Abort every upload left unfinished for ``storage.upload_hours``; how many."""
    cutoff = utcnow() - timedelta(hours=ctx.settings.storage.upload_hours)
    with ctx.sessions() as session:
        rows = list(session.scalars(select(DataUpload).where(DataUpload.created_at < cutoff)))
    buckets = dict(project_buckets(ctx))
    aborted = 0
    for row in rows:
        bucket = buckets.get(row.project_id)
        try:
            if bucket is not None:
                ctx.providers.storage.objects.abort_upload(bucket, row.path, row.upload_id)
        except ProviderError as exc:
            log.warning("could not abort the abandoned upload %s: %s", row.id, exc)
            continue
        with ctx.sessions() as session, session.begin():
            session.execute(delete(DataUpload).where(DataUpload.id == row.id))
        log.info("aborted the abandoned upload of %s in project %s", row.path, row.project_id)
        aborted += 1
    return aborted


def sweep_stale_multipart(ctx: AppContext) -> int:
    """Abort the multipart uploads begun over ``storage.upload_hours`` ago straight
    through S3 (a workspace's key) and never completed: their parts take room that no
    listing or quota shows. Uploads Balsam itself follows (resumable uploads, imports)
    are left to their own rules."""
    cutoff = utcnow() - timedelta(hours=ctx.settings.storage.upload_hours)
    with ctx.sessions() as session:
        known = set(session.scalars(select(DataUpload.upload_id)))
        known |= {u for u in session.scalars(select(DataImport.upload_id)) if u}
    objects = ctx.providers.storage.objects

    def sweep(project_id: str, bucket: str) -> int:
        stale = [
            (key, upload_id)
            for key, upload_id, began in objects.all_uploads(bucket)
            if began < cutoff and upload_id not in known
        ]
        for key, upload_id in stale:
            objects.abort_upload(bucket, key, upload_id)
            log.info("aborted a stale multipart upload of %s in project %s", key, project_id)
        return len(stale)

    return sweep_buckets(ctx, "abort stale multipart uploads", sweep)
