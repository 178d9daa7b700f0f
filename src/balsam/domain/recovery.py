"""Repair of interrupted operations (the crash journal's other half).

A :class:`~balsam.db.models.PendingOperation` row that outlives its operation
(:mod:`balsam.domain.journal`: its process died, or it failed and could not undo
every step) is repaired here — at every start, before anything is served, and
then periodically while Balsam runs (:class:`RecoveryWorker`):

====================== =====================================================
kind                   repair
====================== =====================================================
``project.create``     done if the project row exists; else every part is
                       removed: keys scoped to its bucket, bucket, repository
``project.delete``     finished: workspaces, keys, bucket, repository, rows
``branch.create``      done if the branch row exists; else the git branch and
                       its marker object are removed
``branch.delete``      finished: data prefix retired (kept as versions), git
                       branch, row
``credential.create``  every key scoped to the project's bucket that no
                       credential row knows is revoked (the one minted, if any)
``credential.revoke``  finished: key revoked, row deleted
``workspace.create``   done if the workspace row exists; else its key (as
                       above), secrets file and folder are removed
``workspace.delete``   finished: server, folder, key, rows, secrets
====================== =====================================================

Imports are journaled in their own rows instead (state ``running`` and the process):
:func:`~balsam.domain.data.import_recovery.fail_interrupted` settles those of dead
processes in the same rounds.

Every repair is idempotent (the provider inverses are), so a crash during
recovery is repaired by the next one. Each repaired operation is audited with
the original actor, request id and start time (the attempt) and what was done
(the repair), so the trail explains every orphan that was cleaned up.

A row is not repaired while another operation on the same project is still
running (it may hold a key not yet recorded); new operations on a project wait
for its repair (:class:`~balsam.domain.journal.RepairPending`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import delete, select

from balsam.context import AppContext
from balsam.db.models import Branch, Credential, PendingOperation, Project, Workspace
from balsam.domain.audit.service import AuditRecord
from balsam.domain.data.import_recovery import fail_interrupted
from balsam.domain.data.quotas import enforce_quotas
from balsam.domain.data.retention import purge_expired
from balsam.domain.data.temporary import expire_temporary
from balsam.domain.data.uploads import sweep_stale_multipart, sweep_uploads
from balsam.domain.journal import REPAIR_INTERVAL, gone
from balsam.domain.runs.recovery import fail_interrupted as fail_interrupted_runs
from balsam.domain.workspaces.service import WorkspaceService
from balsam.errors import BalsamError

log = logging.getLogger(__name__)

#: Seconds between periodic repairs while Balsam runs.
INTERVAL = float(REPAIR_INTERVAL)
#: Least seconds between two sweeps for expired deleted data (purge_expired).
PURGE_INTERVAL = 3600.0


def recover(ctx: AppContext) -> int:
    """Repair every operation that is over but journaled; return how many were
    repaired. A repair that fails stays journaled (and logged) for the next try.
    Also removes the scratch space of git operations whose process is gone, and
    settles imports and runs whose process is gone
    (:func:`.data.import_recovery.fail_interrupted`, :func:`.runs.recovery.fail_interrupted`:
    not counted)."""
    try:
        swept = ctx.providers.git.sweep()
    except OSError as exc:
        log.warning("could not sweep git scratch folders: %s", exc)
    else:
        if swept:
            log.info("removed %d scratch folder(s) of interrupted git operations", swept)
    try:
        fail_interrupted(ctx)
    except Exception:  # the journal's repairs must still run
        log.exception("could not settle interrupted imports")
    try:
        fail_interrupted_runs(ctx)
    except Exception:  # the journal's repairs must still run
        log.exception("could not settle interrupted runs")
    with ctx.sessions() as session:
        rows = list(session.scalars(select(PendingOperation).order_by(PendingOperation.id)))
    busy = {r.project_id for r in rows if not gone(r.process)}
    repaired = 0
    for row in rows:
        if not gone(row.process) or row.project_id in busy:
            continue
        try:
            outcome = _REPAIRS[row.kind](ctx, row.project_id, row.subject)
        except (BalsamError, KeyError, OSError) as exc:
            log.warning("could not repair interrupted %s of %s: %s", row.kind, row.project_id, exc)
            continue
        with ctx.sessions() as session, session.begin():
            session.execute(delete(PendingOperation).where(PendingOperation.id == row.id))
        _audit(ctx, row, outcome)
        repaired += 1
    return repaired


def _audit(ctx: AppContext, row: PendingOperation, outcome: str) -> None:
    target = f"project:{row.project_id}" + (
        f"/{_SUBJECTS[row.kind]}:{row.subject}" if row.subject else ""
    )
    ctx.audit.record(
        AuditRecord(
            actor=row.actor,
            action=row.kind,
            target=target,
            outcome="failure",
            project_id=row.project_id,
            request_id=row.request_id,
            details={
                "interrupted": True,
                "startedAt": row.started_at.isoformat(),
                "repair": outcome,
                "repairedBy": "balsam (crash recovery)",
            },
        )
    )
    log.info("repaired interrupted %s of %s: %s", row.kind, target, outcome)


class RecoveryWorker:
    """Runs :func:`recover` every :data:`INTERVAL` seconds in a daemon thread, so an
    operation that could not undo itself (storage was down) is repaired once the
    storage answers again, without a restart. On its first round and then at most
    every ``purge_interval`` seconds it also destroys deleted data past its
    retention period (:func:`~balsam.domain.data.retention.purge_expired`), and
    every ``storage.quota_sweep_minutes`` applies storage quotas to keys
    (:func:`~balsam.domain.data.quotas.enforce_quotas`)."""

    def __init__(
        self, ctx: AppContext, interval: float = INTERVAL, purge_interval: float = PURGE_INTERVAL
    ) -> None:
        self.ctx, self.interval, self.purge_interval = ctx, interval, purge_interval
        self._purged_at: float | None = None  # time.monotonic() of the last sweep
        self._quotas_at: float | None = None  # ... and of the last quota sweep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                recover(self.ctx)
            except Exception:  # never let the thread die; the next round retries
                log.exception("periodic repair failed")
            self._purge_if_due()
            self._enforce_quotas_if_due()

    def _enforce_quotas_if_due(self) -> None:
        now = time.monotonic()
        every = self.ctx.settings.storage.quota_sweep_minutes * 60
        if self._quotas_at is not None and now - self._quotas_at < every:
            return
        self._quotas_at = now
        try:
            enforce_quotas(self.ctx)
        except Exception:  # never let the thread die; the next sweep retries
            log.exception("applying storage quotas failed")

    def _purge_if_due(self) -> None:
        """Sweep unless the last sweep began under ``purge_interval`` seconds ago. A
        failed sweep counts as one: listing every bucket's versions is not cheap."""
        now = time.monotonic()
        if self._purged_at is not None and now - self._purged_at < self.purge_interval:
            return
        self._purged_at = now
        try:
            purge_expired(self.ctx)
        except Exception:  # never let the thread die; the next sweep retries
            log.exception("purging expired deleted data failed")
        try:
            expire_temporary(self.ctx)
        except Exception:  # as above
            log.exception("expiring temporary data failed")
        try:
            sweep_uploads(self.ctx)
            sweep_stale_multipart(self.ctx)
        except Exception:  # as above
            log.exception("aborting abandoned uploads failed")


# -- repairs -------------------------------------------------------------------------


def _known_keys(ctx: AppContext, project_id: str) -> set[str]:
    """Every key Balsam has recorded for the project (credentials, workspaces)."""
    with ctx.sessions() as session:
        keys = set(
            session.scalars(
                select(Credential.access_key).where(Credential.project_id == project_id)
            )
        )
        keys |= {
            k
            for k in session.scalars(
                select(Workspace.s3_access_key).where(Workspace.project_id == project_id)
            )
            if k
        }
    return keys


def _bucket(ctx: AppContext, project_id: str) -> str | None:
    with ctx.sessions() as session:
        project = session.get(Project, project_id)
        return project.bucket if project is not None else None


def _project_create(ctx: AppContext, project_id: str, _: str) -> str:
    if _bucket(ctx, project_id) is not None:
        return "completed"
    storage, git = ctx.providers.storage, ctx.providers.git
    storage.revoke_bucket_keys(project_id)
    storage.delete_bucket(project_id)
    git.delete_repository(project_id)
    return "undone"


def _project_delete(ctx: AppContext, project_id: str, _: str) -> str:
    with ctx.sessions() as session:
        keys = session.scalars(
            select(Credential.access_key).where(Credential.project_id == project_id)
        ).all()
        workspaces = session.scalars(
            select(Workspace.id).where(Workspace.project_id == project_id)
        ).all()
    for workspace_id in workspaces:
        WorkspaceService(ctx).remove(workspace_id)
    storage, git = ctx.providers.storage, ctx.providers.git
    for access_key in keys:
        storage.revoke_key(access_key)
    storage.revoke_bucket_keys(project_id)
    storage.delete_bucket(project_id)
    git.delete_repository(project_id)
    with ctx.sessions() as session, session.begin():
        project = session.get(Project, project_id)
        if project is not None:
            session.delete(project)
    return "completed"


def _branch_create(ctx: AppContext, project_id: str, branch: str) -> str:
    with ctx.sessions() as session:
        if session.get(Branch, (project_id, branch)) is not None:
            return "completed"
    bucket = _bucket(ctx, project_id)
    if bucket is None:
        return "undone"
    if branch in ctx.providers.git.list_branches(project_id):
        ctx.providers.git.delete_branch(project_id, branch)
    # Retired, not destroyed: a branch of that name deleted earlier keeps its data.
    ctx.providers.storage.retire_prefix(bucket, f"{branch}/")
    return "undone"


def _branch_delete(ctx: AppContext, project_id: str, branch: str) -> str:
    bucket = _bucket(ctx, project_id)
    if bucket is None:
        return "completed"
    ctx.providers.storage.retire_prefix(bucket, f"{branch}/")
    if branch in ctx.providers.git.list_branches(project_id):
        ctx.providers.git.delete_branch(project_id, branch)
    with ctx.sessions() as session, session.begin():
        row = session.get(Branch, (project_id, branch))
        if row is not None:
            session.delete(row)
    return "completed"


def _unrecorded_keys(ctx: AppContext, project_id: str) -> int:
    """Revoke the project's keys that no row records; how many there were."""
    bucket = _bucket(ctx, project_id)
    if bucket is None:
        return 0
    return ctx.providers.storage.revoke_bucket_keys(bucket, keep=_known_keys(ctx, project_id))


def _credential_create(ctx: AppContext, project_id: str, _: str) -> str:
    return "undone" if _unrecorded_keys(ctx, project_id) else "completed"


def _credential_revoke(ctx: AppContext, project_id: str, access_key: str) -> str:
    ctx.providers.storage.revoke_key(access_key)
    with ctx.sessions() as session, session.begin():
        row = session.get(Credential, access_key)
        if row is not None:
            session.delete(row)
    return "completed"


def _workspace_create(ctx: AppContext, project_id: str, workspace_id: str) -> str:
    with ctx.sessions() as session:
        if session.get(Workspace, workspace_id) is not None:
            return "completed"
    _unrecorded_keys(ctx, project_id)
    ctx.providers.workspaces.delete(workspace_id)
    ctx.workspace_secrets.delete(workspace_id)
    return "undone"


def _workspace_delete(ctx: AppContext, project_id: str, workspace_id: str) -> str:
    WorkspaceService(ctx).remove(workspace_id)
    return "completed"


_REPAIRS: dict[str, Callable[[AppContext, str, str], str]] = {
    "project.create": _project_create,
    "project.delete": _project_delete,
    "branch.create": _branch_create,
    "branch.delete": _branch_delete,
    "credential.create": _credential_create,
    "credential.revoke": _credential_revoke,
    "workspace.create": _workspace_create,
    "workspace.delete": _workspace_delete,
}

#: What a row's subject names, in the audit target.
_SUBJECTS = {
    "branch.create": "branch",
    "branch.delete": "branch",
    "credential.create": "credential",
    "credential.revoke": "credential",
    "workspace.create": "workspace",
    "workspace.delete": "workspace",
}
