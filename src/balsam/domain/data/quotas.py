"""Storage quotas for writes that do not pass through Balsam.

Writes through Balsam's data API are checked before and while they happen
(:meth:`~balsam.domain.data.service.DataService.require_room`). A workspace (or a
project key) writes straight to the S3 server, which knows no quotas, so the quota
sweep (:func:`enforce_quotas`, every ``storage.quota_sweep_minutes`` from the
:class:`~balsam.domain.recovery.RecoveryWorker`) lists each bucket that has a quota
(its project's own, else ``storage.quota_bytes``): over it, every key scoped to the
bucket loses the right to write and delete objects (reading, listing and tags stay),
and ``Project.storage_over_quota`` is set; back under it (a member deleted data in the
portal or through the API), the keys may write again. Each change is logged and
audited (``data.quota``). A key minted while the project is over its quota gets its
rights at the next sweep, and so do writes made between two sweeps: the quota holds
for direct writes within one sweep interval.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import Project
from balsam.domain.audit.service import AuditRecord
from balsam.errors import BalsamError

log = logging.getLogger(__name__)

#: The actor of the sweep's audit records.
ACTOR = "system:quota"


def enforce_quotas(ctx: AppContext, project_id: str | None = None) -> int:
    """Apply every quota (or ``project_id``'s only); how many projects changed state.
    A bucket whose storage fails is logged and skipped (the next sweep retries)."""
    default = ctx.settings.storage.quota_bytes
    query = select(Project.id, Project.bucket, Project.storage_quota_bytes,
                   Project.storage_over_quota)  # fmt: skip
    if project_id is not None:
        query = query.where(Project.id == project_id)
    with ctx.sessions() as session:
        projects = list(session.execute(query))
    changed = 0
    for pid, bucket, own, over in projects:
        quota = own if own is not None else default
        try:
            changed += _enforce(ctx, pid, bucket, quota, over)
        except BalsamError as exc:
            log.warning("could not apply the storage quota of project %s: %s", pid, exc)
    return changed


def _enforce(ctx: AppContext, project_id: str, bucket: str, quota: int | None, over: bool) -> int:
    if quota is None and not over:
        return 0
    used = sum(obj.size for obj in ctx.providers.storage.objects.walk(bucket))
    now_over = quota is not None and used > quota
    storage = ctx.providers.storage
    if now_over:
        # Again on every sweep: keys minted since the last one can still write.
        storage.set_bucket_writable(bucket, False)
    if now_over == over:
        return 0
    if not now_over:
        storage.set_bucket_writable(bucket, True)
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(Project).where(Project.id == project_id).values(storage_over_quota=now_over)
        )
    log.info(
        "project %s is %s its storage quota (%d of %s bytes): its keys %s",
        project_id,
        "over" if now_over else "within",
        used,
        quota,
        "may no longer write" if now_over else "may write again",
    )
    ctx.audit.record(
        AuditRecord(
            actor=ACTOR,
            action="data.quota",
            target=f"project:{project_id}",
            project_id=project_id,
            details={"overQuota": now_over, "bytes": used, "storageQuotaBytes": quota},
        )
    )
    return 1
