"""Temporary data expires: objects under ``tmp/`` of a project's bucket are deleted once
their time is up — as asked at upload (``?expiresInDays=``), else ``storage.tmp_days``
after they were written (objects a workspace wrote straight to S3 included). Deleting
is recoverable as any deletion: the versions stay for ``storage.retention_days`` and the
retention sweep then purges them. The :class:`~balsam.domain.recovery.RecoveryWorker`
runs :func:`expire_temporary` with the retention sweep, at most hourly; each object
removed is logged, and each project's removals audited (``data.expire``).
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime

from balsam.context import AppContext
from balsam.db.models import utcnow
from balsam.domain.audit.service import AuditRecord
from balsam.domain.data.retention import sweep_buckets
from balsam.domain.data.service import TMP, expiry, written_through_balsam

log = logging.getLogger(__name__)

#: The actor of the sweep's audit records.
ACTOR = "system:temporary"
_PAGE = 1000


def expire_temporary(ctx: AppContext, *, now: datetime | None = None) -> int:
    """Delete every expired object under tmp/ of every project at ``now`` (default: the
    current time); how many. A bucket whose storage fails is logged and skipped."""
    at = now or utcnow()
    return sweep_buckets(
        ctx,
        "expire temporary data",
        lambda project_id, bucket: _expire_bucket(ctx, project_id, bucket, at),
    )


def _expire_bucket(ctx: AppContext, project_id: str, bucket: str, now: datetime) -> int:
    objects = ctx.providers.storage.objects
    expired: list[str] = []
    listed = objects.walk(bucket, TMP)
    while page := list(itertools.islice(listed, _PAGE)):
        rows = written_through_balsam(ctx, project_id, page)
        for obj in page:
            at = expiry(ctx, obj, rows.get(obj.key))
            if at is not None and at <= now:
                objects.delete(bucket, obj.key)
                log.info("expired temporary object %s of project %s", obj.key, project_id)
                expired.append(obj.key)
    if expired:
        ctx.audit.record(
            AuditRecord(
                actor=ACTOR,
                action="data.expire",
                target=f"project:{project_id}",
                project_id=project_id,
                details={"count": len(expired), "paths": expired[:100]},
            )
        )
    return len(expired)
