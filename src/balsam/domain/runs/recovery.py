"""Settling runs a crash interrupted: a ``running`` run whose process is gone
(:func:`~balsam.domain.journal.gone`) gets its storage key revoked (the row keeps the
key's id until then), whatever its code left running or on disk removed (its uid's
processes, its folder, its uid), and ends ``failed`` with its record, by
:func:`fail_interrupted`,
run by :func:`~balsam.domain.recovery.recover` at every start and periodically. Its
runner died with Balsam (the runner's process group has Balsam's death signal), and
nothing of it was published: publishing is the last step of a run that ended.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Project, Run
from balsam.domain.journal import gone
from balsam.domain.runs.execution import INTERRUPTED, finish, revoke
from balsam.errors import BalsamError

log = logging.getLogger(__name__)


def fail_interrupted(ctx: AppContext) -> int:
    """Fail every running run whose process is gone; how many."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Run.id, Run.process, Run.access_key, Project.bucket)
            .join(Project, Project.id == Run.project_id)
            .where(Run.state == "running")
        ).all()
    settled = 0
    for run_id, process, access_key, bucket in rows:
        if process is not None and not gone(process):
            continue
        try:
            ctx.providers.workspaces.clean_up_run(run_id)
            if access_key is not None and not revoke(ctx, access_key):
                continue  # storage down: the next round retries
            finish(ctx, run_id, bucket, None, INTERRUPTED, cancelled=False, publish=False)
        except BalsamError as exc:
            log.warning("could not settle interrupted run %s: %s", run_id, exc)
            continue
        settled += 1
    return settled
