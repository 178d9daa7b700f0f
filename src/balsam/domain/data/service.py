"""A project's data: browsing, reading, writing, deleting, versions and restoring
objects in its bucket, and its usage. Members (and admins) may do all of it; others
are told the project does not exist. Every change is audited, and every object
version written through here has its provenance recorded (who, when, from where,
SHA-256: :class:`~balsam.db.models.DataObject`). The object also carries
``x-amz-meta-balsam-*`` metadata (who, when, from where) for S3 readers, but the API
reports only Balsam's own record: anyone holding a key of the bucket can write such
metadata.

Paths are keys in the bucket (``main/folder/file.csv``: a branch's data lives under
``<branch>/``). Deleting is recoverable: the bucket keeps versions, a deleted object
is listed among its versions and can be restored until the retention sweep
(:mod:`.retention`) removes it.
"""

from __future__ import annotations

import itertools
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy import func, select

from balsam.context import AppContext
from balsam.db.models import DataObject, DataUpload, Project
from balsam.domain.audit.service import AuditRecord
from balsam.domain.data.preview import preview
from balsam.domain.data.schemas import (
    DataItem,
    DataListing,
    DataPreview,
    DataUsage,
    DataVersion,
    DataVersions,
    DataWritten,
    DeletedItem,
    DeletedListing,
    PrefixUsage,
    Provenance,
)
from balsam.domain.identity.service import Actor
from balsam.domain.projects.access import require
from balsam.errors import N_, Conflict, InvalidInput, NotFound, QuotaExceeded, RateLimited
from balsam.providers.storage.base import ObjectVersion
from balsam.providers.storage.objects import ObjectInfo, S3ObjectStore, Upload

MAX_PATH_BYTES = 1024
#: Previews decoded at once in this process, and how long one waits for its turn.
_PREVIEWS = threading.BoundedSemaphore(4)
PREVIEW_WAIT_SECONDS = 20.0
#: Deleted objects one listing shows at most.
MAX_DELETED = 1000
#: Most objects one move of a folder takes.
MAX_MOVE = 10_000
#: The temporary area of every bucket: objects there expire (see :mod:`.temporary`).
TMP = "tmp/"
#: How far a listed object's time may be from a recorded write's for it to be that
#: write's version (listings carry no version ids).
_SAME_WRITE = timedelta(seconds=2)


def check_path(path: str, *, folder: bool = False) -> str:
    """``path`` if it is a key Balsam reads and writes: UTF-8, at most 1024 bytes, no
    control characters, no leading '/', no empty, '.' or '..' segment. ``folder``:
    '' (the bucket's top) or a path ending in '/'. InvalidInput otherwise."""
    problem = _path_problem(path, folder=folder)
    if problem:
        raise InvalidInput(N_("Not a usable data path: %(why)s."), params={"why": problem})
    return path


def _path_problem(path: str, *, folder: bool) -> str | None:
    if folder and path == "":
        return None
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "not UTF-8"
    if size > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in path):
        return "control characters"
    segments = path.split("/")
    if folder:
        if segments[-1] != "":
            return "a folder ends in '/'"
        segments = segments[:-1]
    if not segments or any(s in ("", ".", "..") for s in segments):
        return "empty, '.' or '..' parts"
    return None


#: Where recorded runs keep their results: written by runs and Balsam only.
RUNS = "runs/"


def check_writable(path: str) -> None:
    """InvalidInput for a path under ``runs/``: a run's results are its record's
    evidence; nobody changes them through the data API."""
    if path.startswith(RUNS) or path.rstrip("/") == RUNS.rstrip("/"):
        raise InvalidInput(N_("runs/ holds recorded runs' results: it is read-only here."))


@dataclass
class DataProject:
    """A project as its data needs it (from :meth:`DataService.access`)."""

    id: str
    bucket: str
    #: Bytes its bucket may hold (its own quota, else the default); None: no quota.
    quota: int | None = None


class DataWrite:
    """One object being written through :meth:`DataService.begin_write`: :meth:`add`
    chunks (True: a part is ready: :meth:`flush`, or :meth:`take` it and :meth:`send` it
    while more arrives), then :meth:`finish`, or :meth:`abort` (nothing is then
    visible)."""

    def __init__(
        self,
        service: DataService,
        actor: Actor,
        project: DataProject,
        upload: Upload,
        expires_at: datetime | None,
        room: int | None,
        source: str = "upload",
    ) -> None:
        self._service, self._actor, self._project, self._upload = service, actor, project, upload
        self._expires_at, self._room, self._source = expires_at, room, source

    @property
    def upload_id(self) -> str | None:
        """The storage server's multipart upload, once the first part has gone."""
        return self._upload.upload_id

    def add(self, chunk: bytes) -> bool:
        """Take ``chunk`` (QuotaExceeded once the body outgrows the project's room)."""
        if self._room is not None and self._upload.size + len(chunk) > self._room:
            raise quota_exceeded(self._project)
        return self._upload.add(chunk)

    def flush(self) -> None:
        self._upload.flush()

    def take(self) -> tuple[int, bytearray]:
        """The next whole part and its number (see :meth:`Upload.take`)."""
        return self._upload.take()

    def send(self, number: int, part: bytes | bytearray) -> None:
        self._upload.send(number, part)

    def abort(self) -> None:
        self._upload.abort()

    def finish(self) -> DataWritten:
        version = self._upload.finish()
        upload, project = self._upload, self._project
        self._service.record(
            self._actor,
            project.id,
            upload.key,
            version,
            upload.size,
            upload.sha256,
            self._source,
            self._expires_at,
        )
        return DataWritten(
            path=upload.key, version_id=version, size=upload.size, sha256=upload.sha256
        )


class DataService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @property
    def _objects(self) -> S3ObjectStore:
        return self.ctx.providers.storage.objects

    def access(self, actor: Actor, project_id: str, action: str) -> DataProject:
        """The project if ``actor`` is a member (or an admin); NotFound otherwise."""
        with self.ctx.sessions() as session:
            return self.data_project(require(self.ctx, session, actor, project_id, "member",
                                             action))  # fmt: skip

    def data_project(self, project: Project) -> DataProject:
        """``project`` as its data needs it (its own quota, else the installation's)."""
        quota = project.storage_quota_bytes
        if quota is None:
            quota = self.ctx.settings.storage.quota_bytes
        return DataProject(project.id, project.bucket, quota)

    def room(self, project: DataProject, *, besides: str | None = None) -> int | None:
        """Bytes the project may still write (None: no quota): its quota less its current
        objects (a listing of the bucket) and the sizes its unfinished resumable uploads
        announced (but ``besides``, the one being completed): parts take room as they
        wait."""
        if project.quota is None:
            return None
        used = sum(obj.size for obj in self._objects.walk(project.bucket))
        with self.ctx.sessions() as session:
            pending = session.scalar(
                select(func.coalesce(func.sum(DataUpload.size), 0)).where(
                    DataUpload.project_id == project.id,
                    DataUpload.id != (besides or ""),
                )
            )
        return max(0, project.quota - used - int(pending or 0))

    def require_room(self, project: DataProject, size: int) -> int | None:
        """:meth:`room`, after checking that ``size`` more bytes fit (QuotaExceeded)."""
        room = self.room(project)
        if room is not None and size > room:
            raise quota_exceeded(project)
        return room

    # -- reading ------------------------------------------------------------------------

    def list(
        self, actor: Actor, project_id: str, prefix: str = "", *, after: str = "", limit: int = 1000
    ) -> DataListing:
        """Objects and folders directly under ``prefix`` ('' or a folder path)."""
        check_path(prefix, folder=True)
        project = self.access(actor, project_id, "data.list")
        listing = self._objects.list(project.bucket, prefix, limit=limit, after=after)
        rows = written_through_balsam(self.ctx, project.id, listing.objects)
        items = [
            DataItem(
                path=o.key,
                size=o.size,
                modified_at=o.last_modified,
                uploaded_by=rows[o.key].uploaded_by if o.key in rows else None,
                expires_at=expiry(self.ctx, o, rows.get(o.key)),
            )
            for o in listing.objects
        ]
        return DataListing(items=items, prefixes=listing.prefixes, next_after=listing.next_after)

    def read(
        self,
        actor: Actor,
        project_id: str,
        path: str,
        *,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object (or one version of it) and its body; NotFound if missing."""
        check_path(path)
        project = self.access(actor, project_id, "data.read")
        opened = self._objects.open(project.bucket, path, version_id)
        if opened is None:
            raise _no_such(path)
        return opened

    def preview(
        self, actor: Actor, project_id: str, path: str, version_id: str | None = None
    ) -> DataPreview:
        """Schema and first rows (or the beginning of a text), by ranged reads."""
        check_path(path)
        project = self.access(actor, project_id, "data.read")
        info = self._objects.head(project.bucket, path, version_id)
        if info is None:
            raise _no_such(path)
        version = info.version_id  # every read of the same version, even if overwritten

        def read(first: int, last: int) -> bytes:
            opened = self._objects.open(project.bucket, path, version, (first, last))
            if opened is None:
                raise _no_such(path)
            return b"".join(opened[1])

        # Decoding holds memory and a thread: a few at once, others wait a little.
        if not _PREVIEWS.acquire(timeout=PREVIEW_WAIT_SECONDS):
            raise RateLimited(
                N_("Too many previews at once; try again in a moment."),
                details={"retryAfterSeconds": 2},
            )
        try:
            return preview(info, read)
        finally:
            _PREVIEWS.release()

    def provenance(
        self, actor: Actor, project_id: str, path: str, version_id: str | None = None
    ) -> Provenance:
        check_path(path)
        project = self.access(actor, project_id, "data.read")
        info = self._objects.head(project.bucket, path, version_id)
        if info is None:
            raise _no_such(path)
        # Only Balsam's own record counts: anyone with a key of the bucket can write an
        # object carrying x-amz-meta-balsam-* of their choosing.
        row = self._row(project.id, path, info.version_id)
        return Provenance(
            path=path,
            version_id=info.version_id,
            size=info.size,
            modified_at=info.last_modified,
            content_type=info.content_type,
            uploaded_by=row.uploaded_by if row else None,
            uploaded_at=row.created_at if row else None,
            sha256=(row.sha256 or None) if row else None,
            source=row.source if row else None,
        )

    def _row(self, project_id: str, path: str, version_id: str | None) -> DataObject | None:
        if not version_id:
            return None
        with self.ctx.sessions() as session:
            return session.scalar(
                select(DataObject).where(
                    DataObject.project_id == project_id,
                    DataObject.path == path,
                    DataObject.version_id == version_id,
                )
            )

    def versions(self, actor: Actor, project_id: str, path: str) -> DataVersions:
        """Every version and deletion of ``path``, newest first; NotFound if none."""
        check_path(path)
        project = self.access(actor, project_id, "data.read")
        found = self._objects.versions(project.bucket, path)
        if not found:
            raise _no_such(path)
        with self.ctx.sessions() as session:
            writers = dict(
                session.execute(
                    select(DataObject.version_id, DataObject.uploaded_by).where(
                        DataObject.project_id == project.id, DataObject.path == path
                    )
                ).all()
            )
        return DataVersions(
            versions=[
                DataVersion(
                    version_id=str(v["VersionId"]),
                    size=int(v["Size"]),
                    modified_at=v["LastModified"],
                    uploaded_by=writers.get(str(v["VersionId"])),
                    deleted=bool(v["deleted"]),
                    current=bool(v.get("IsLatest")),
                )
                for v in found
            ]
        )

    def deleted(self, actor: Actor, project_id: str, prefix: str) -> DeletedListing:
        """Objects under ``prefix`` (at any depth) whose current entry is a deletion and
        that have a version to restore (the newest), at most :data:`MAX_DELETED`."""
        check_path(prefix, folder=True)
        project = self.access(actor, project_id, "data.list")
        found: list[DeletedItem] = []
        current: ObjectVersion | None = None  # the key's current entry, if a deletion
        for version in self.ctx.providers.storage.list_versions(project.bucket, prefix):
            if version.is_latest:
                current = version if version.is_delete_marker else None
            elif (
                current is not None
                and current.key == version.key
                and not (version.is_delete_marker)
            ):
                found.append(
                    DeletedItem(
                        path=version.key,
                        deleted_at=current.last_modified,
                        version_id=version.version_id,
                        size=version.size,
                    )
                )
                current = None  # the newest only
            if len(found) > MAX_DELETED:
                break
        return DeletedListing(items=found[:MAX_DELETED], truncated=len(found) > MAX_DELETED)

    def usage(self, actor: Actor, project_id: str) -> DataUsage:
        """Bytes and objects (current versions) per top-level folder."""
        project = self.access(actor, project_id, "data.usage")
        totals: dict[str, list[int]] = {}
        for obj in self._objects.walk(project.bucket):
            top = obj.key.split("/", 1)[0] + "/" if "/" in obj.key else ""
            counted = totals.setdefault(top, [0, 0])
            counted[0] += obj.size
            counted[1] += 1
        prefixes = [
            PrefixUsage(prefix=prefix, bytes=size, objects=count)
            for prefix, (size, count) in sorted(totals.items())
        ]
        return DataUsage(
            prefixes=prefixes,
            bytes=sum(p.bytes for p in prefixes),
            objects=sum(p.objects for p in prefixes),
            storage_quota_bytes=project.quota,
        )

    # -- writing ------------------------------------------------------------------------

    def begin_write(
        self,
        actor: Actor,
        project_id: str,
        path: str,
        content_type: str | None,
        *,
        expires_in_days: int | None = None,
        size: int | None = None,
        source: str = "upload",
    ) -> DataWrite:
        """A streaming write of ``path`` (its earlier content stays as a version). In
        tmp/ it expires after ``expires_in_days`` (default storage.tmp_days, at most
        storage.tmp_max_days); elsewhere nothing expires. ``size``, when known, is
        checked against the project's quota first; the body is checked as it arrives.
        ``source``: where it comes from, for its provenance ('upload', or an import's
        URL)."""
        check_path(path)
        check_writable(path)
        expires_at = self.expiry_for(path, expires_in_days)
        project = self.access(actor, project_id, "data.write")
        room = self.require_room(project, size or 0)
        metadata = provenance_metadata(actor.username, source)
        if expires_at is not None:
            metadata["balsam-expires-at"] = expires_at.isoformat(timespec="seconds")
        upload = self._objects.upload(
            project.bucket,
            path,
            content_type=(content_type or "application/octet-stream")[:200],
            metadata=metadata,
        )
        return DataWrite(self, actor, project, upload, expires_at, room, source)

    def check_expiry(self, path: str, days: int | None) -> None:
        """InvalidInput unless ``days`` may be asked for data at ``path``."""
        self.expiry_for(path, days)

    def expiry_for(self, path: str, days: int | None) -> datetime | None:
        storage = self.ctx.settings.storage
        if not path.startswith(TMP):
            if days is not None:
                raise InvalidInput(N_("Only data in tmp/ expires."))
            return None
        if days is not None and not 1 <= days <= storage.tmp_max_days:
            raise InvalidInput(
                N_("Temporary data is kept 1 to %(days)s days."),
                params={"days": storage.tmp_max_days},
            )
        return datetime.now(UTC) + timedelta(days=days or storage.tmp_days)

    def record(
        self,
        actor: Actor,
        project_id: str,
        path: str,
        version_id: str | None,
        size: int,
        sha256: str,
        source: str,
        expires_at: datetime | None = None,
    ) -> None:
        """The provenance row of a version just written, and the audit record."""
        self._add_row(actor, project_id, path, version_id, size, sha256, source, expires_at)
        self.audit(
            actor, "data.write", project_id, path, versionId=version_id, size=size, source=source
        )

    def delete(self, actor: Actor, project_id: str, path: str) -> int:
        """Delete an object, or a folder (a path ending in '/') and everything under it,
        recoverably; the number of objects deleted. NotFound when nothing is there."""
        folder = path.endswith("/")  # never '' (the whole bucket): that is no path
        check_path(path, folder=folder)
        check_writable(path)
        project = self.access(actor, project_id, "data.delete")
        if folder:
            count = self.ctx.providers.storage.retire_prefix(project.bucket, path)
        elif self._objects.head(project.bucket, path) is not None:
            self._objects.delete(project.bucket, path)
            count = 1
        else:
            count = 0
        if count == 0:
            raise _no_such(path)
        self.audit(actor, "data.delete", project.id, path, objects=count)
        return count

    def restore(self, actor: Actor, project_id: str, path: str, version_id: str) -> DataWritten:
        """Make ``version_id`` of ``path`` current again (as a new version)."""
        check_path(path)
        check_writable(path)
        project = self.access(actor, project_id, "data.restore")
        old = self._objects.head(project.bucket, path, version_id)
        if old is None:
            raise NotFound(
                N_("No version '%(version)s' of '%(path)s'."),
                params={"version": version_id, "path": path},
            )
        self.require_room(project, old.size)
        source = f"restore of {version_id}"
        new = self._objects.copy(
            project.bucket,
            path,
            path,
            version_id,
            provenance_metadata(actor.username, source),
            size=old.size,
            content_type=old.content_type,
        )
        earlier = self._row(project.id, path, version_id)
        sha256 = earlier.sha256 if earlier else ""
        expires_at = self.expiry_for(path, None)
        self.record(actor, project.id, path, new.version_id, new.size, sha256, source, expires_at)
        return DataWritten(path=path, version_id=new.version_id, size=new.size, sha256=sha256)

    def move(self, actor: Actor, project_id: str, path: str, to: str) -> int:
        """Move (rename) an object, or a folder and everything under it, to ``to``
        within the project; how many objects moved. Each is copied on the storage server
        (its provenance follows it: ``moved from <path>``), then deleted where it was,
        recoverably. Conflict when something is at ``to`` already (nothing is
        overwritten by a move); NotFound when nothing is at ``path``."""
        folder = path.endswith("/")
        check_path(path, folder=folder)
        check_path(to, folder=folder)
        check_writable(path)
        check_writable(to)
        if path == "" or to == path or (folder and to.startswith(path)):
            raise InvalidInput(N_("A folder cannot be moved into itself."))
        project = self.access(actor, project_id, "data.move")
        objects = self._objects
        if folder:
            listed = objects.walk(project.bucket, path)
            moving = [o.key for o in itertools.islice(listed, MAX_MOVE + 1)]
            if len(moving) > MAX_MOVE:
                raise InvalidInput(
                    N_("A folder of more than %(most)s objects cannot be moved at once."),
                    params={"most": MAX_MOVE},
                )
            taken = next(objects.walk(project.bucket, to), None) is not None
        else:
            moving = [path] if objects.head(project.bucket, path) is not None else []
            taken = objects.head(project.bucket, to) is not None
        if not moving:
            raise _no_such(path)
        if taken:
            raise Conflict(N_("Something is at '%(path)s' already."), params={"path": to})
        for key in moving:
            current = objects.head(project.bucket, key)
            if current is None:  # deleted meanwhile
                continue
            target = to + key[len(path) :] if folder else to
            source = f"moved from {key}"
            new = objects.copy(project.bucket, target, key, current.version_id,
                               provenance_metadata(actor.username, source),
                               size=current.size, content_type=current.content_type)  # fmt: skip
            row = self._row(project.id, key, current.version_id)
            self.record_quietly(actor, project.id, target, new, row.sha256 if row else "", source)
            objects.delete(project.bucket, key)
        self.audit(actor, "data.move", project.id, path, to=to, objects=len(moving))
        return len(moving)

    def record_quietly(
        self,
        actor: Actor,
        project_id: str,
        path: str,
        info: ObjectInfo,
        sha256: str,
        source: str,
    ) -> None:
        """The provenance row of a version written as part of a larger change (audited
        as that change)."""
        expires_at = self.expiry_for(path, None)
        self._add_row(actor, project_id, path, info.version_id, info.size, sha256, source,
                      expires_at)  # fmt: skip

    def _add_row(
        self,
        actor: Actor,
        project_id: str,
        path: str,
        version_id: str | None,
        size: int,
        sha256: str,
        source: str,
        expires_at: datetime | None,
    ) -> None:
        with self.ctx.sessions() as session, session.begin():
            session.add(
                DataObject(
                    project_id=project_id,
                    path=path,
                    version_id=version_id or "",
                    size=size,
                    sha256=sha256,
                    uploaded_by=actor.username,
                    source=source,
                    expires_at=expires_at,
                )
            )

    def audit(
        self, actor: Actor, action: str, project_id: str, path: str, **details: object
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/data:{path}"[:300],
                project_id=project_id,
                request_id=actor.request_id,
                details={"path": path, **details},
            )
        )


def written_through_balsam(
    ctx: AppContext, project_id: str, objects: list[ObjectInfo]
) -> dict[str, DataObject]:
    """path → the provenance record of the listed version, where Balsam wrote it (same
    size, same time: listings carry no version ids)."""
    if not objects:
        return {}
    listed = {o.key: o for o in objects}
    with ctx.sessions() as session:
        rows = session.scalars(
            select(DataObject)
            .where(DataObject.project_id == project_id, DataObject.path.in_(listed))
            .order_by(DataObject.id)
        ).all()
    found: dict[str, DataObject] = {}
    for row in rows:
        obj = listed[row.path]
        if row.size == obj.size and abs(row.created_at - obj.last_modified) <= _SAME_WRITE:
            found[row.path] = row
    return found


def expiry(ctx: AppContext, obj: ObjectInfo, row: DataObject | None) -> datetime | None:
    """When a temporary object expires: as asked at its upload, else storage.tmp_days
    after it was written; None outside tmp/."""
    if not obj.key.startswith(TMP):
        return None
    if row is not None and row.expires_at is not None:
        return row.expires_at
    return obj.last_modified + timedelta(days=ctx.settings.storage.tmp_days)


def provenance_metadata(username: str, source: str) -> dict[str, str]:
    """``x-amz-meta-balsam-*`` of a write now: S3 metadata is ASCII, so non-ASCII is
    %-escaped."""
    return {
        "balsam-uploaded-by": quote(username, safe="@._-"),
        "balsam-uploaded-at": datetime.now(UTC).isoformat(timespec="seconds"),
        # S3 keeps 2 KB of metadata: an import's long URL is cut (the record has it whole).
        "balsam-source": quote(source, safe=" @._-:/")[:1024],
    }


def quota_exceeded(project: DataProject) -> QuotaExceeded:
    return QuotaExceeded(
        N_("This would take the project's data past its storage quota of %(quota)s bytes."),
        params={"quota": project.quota},
        details={"storageQuotaBytes": project.quota},
    )


def _no_such(path: str) -> NotFound:
    return NotFound(N_("No data at '%(path)s'."), params={"path": path})
