"""Deleting is deliberate: deleted data is kept for ``storage.retention_days``.

Project buckets keep versions, so a deleted object (a retired branch prefix, or
an object a user overwrote or deleted) stays as a noncurrent version under a
delete marker, hidden from listings and workspaces. :func:`purge_expired`
destroys what has been deleted for longer than the retention period:

* a noncurrent version or delete marker, once the entry that replaced it (the
  next newer one of its key) is older than the period;
* a current delete marker, once it is itself older than the period (by then
  every version under it has gone too, so it hides nothing).

Current objects are never purged. The sweep also turns versioning on for
buckets made before Balsam kept versions (:meth:`StorageProvider.enable_versioning`),
so such buckets keep versions from their first sweep on; retiring a prefix
turns it on too, whenever that comes first. The
:class:`~balsam.domain.recovery.RecoveryWorker` runs the sweep at most hourly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Project, utcnow
from balsam.domain.audit.service import AuditRecord
from balsam.errors import ProviderError
from balsam.providers.storage.base import ObjectVersion

log = logging.getLogger(__name__)

#: The actor of the sweep's audit records.
ACTOR = "system:retention"


def purge_expired(ctx: AppContext, *, now: datetime | None = None) -> int:
    """Destroy, in every project's bucket, the versions and delete markers deleted
    longer than ``storage.retention_days`` before ``now`` (default: the current
    time); return how many. Audits ``data.purge`` per project that lost any. A
    bucket whose storage fails is logged and skipped; the next sweep retries it."""
    cutoff = (now or utcnow()) - timedelta(days=ctx.settings.storage.retention_days)
    return sweep_buckets(
        ctx,
        "purge expired data",
        lambda project_id, bucket: _purge_bucket(ctx, project_id, bucket, cutoff),
    )


def sweep_buckets(ctx: AppContext, what: str, sweep: Callable[[str, str], int]) -> int:
    """``sweep(project_id, bucket)`` over every project's bucket; the sum of what they
    return. A bucket whose storage fails is logged and skipped (the next sweep retries)."""
    done = 0
    for project_id, bucket in project_buckets(ctx):
        try:
            done += sweep(project_id, bucket)
        except ProviderError as exc:
            log.warning("could not %s of project %s: %s", what, project_id, exc)
    return done


def expired_versions(versions: Iterable[ObjectVersion], cutoff: datetime) -> list[ObjectVersion]:
    """The entries of ``versions`` (ordered as ``list_versions`` returns them: by
    key, current first, then newest to oldest) deleted at or before ``cutoff``."""
    expired: list[ObjectVersion] = []
    newer: ObjectVersion | None = None
    for version in versions:
        if newer is not None and newer.key != version.key:
            newer = None
        deleted_at = _deleted_at(version, newer)
        if deleted_at is not None and deleted_at <= cutoff:
            expired.append(version)
        newer = version
    return expired


def _deleted_at(version: ObjectVersion, newer: ObjectVersion | None) -> datetime | None:
    """When ``version`` stopped being current data: when the next newer entry of its
    key was written; for a current delete marker, when it was written; never (None)
    for a current object."""
    if newer is not None:
        return newer.last_modified
    return version.last_modified if version.is_delete_marker else None


def project_buckets(ctx: AppContext) -> list[tuple[str, str]]:
    """(project id, bucket) of every project."""
    with ctx.sessions() as session:
        rows = session.execute(select(Project.id, Project.bucket).order_by(Project.id))
        return [(project_id, bucket) for project_id, bucket in rows]


def _purge_bucket(ctx: AppContext, project_id: str, bucket: str, cutoff: datetime) -> int:
    storage = ctx.providers.storage
    if storage.enable_versioning(bucket):
        log.info("bucket %s of project %s now keeps versions", bucket, project_id)
    expired = expired_versions(storage.list_versions(bucket), cutoff)
    if not expired:
        return 0
    storage.purge_versions(bucket, expired)
    ctx.audit.record(
        AuditRecord(
            actor=ACTOR,
            action="data.purge",
            target=f"project:{project_id}",
            project_id=project_id,
            details={"count": len(expired), "retentionDays": ctx.settings.storage.retention_days},
        )
    )
    return len(expired)
