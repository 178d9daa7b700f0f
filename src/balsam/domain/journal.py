"""The crash journal: multi-step operations that survive a ``kill -9``.

A multi-step operation (project create and delete, branch create and delete)
writes a :class:`~balsam.db.models.PendingOperation` row, in its own committed
transaction, before its first side effect, and removes it when it has finished
or has been undone in-process (:class:`balsam.domain.steps.Compensations`). A
row that outlives its process therefore names an operation interrupted at an
unknown step. :func:`recover` repairs each one, at the next start:

=================  =====================================================
kind               repair
=================  =====================================================
``project.create`` done if the project row exists; else every part is
                   removed: keys scoped to its bucket, bucket, repository
``project.delete`` finished: keys, bucket, repository, rows
``branch.create``  done if the branch row exists; else the git branch and
                   its marker object are removed
``branch.delete``  finished: data prefix, git branch, row
=================  =====================================================

Every repair is idempotent (the provider inverses are), so a crash during
recovery is repaired by the next one. Each repaired operation is audited with
the original actor, request id and start time (the attempt) and what was done
(the repair), so the trail explains every orphan that was cleaned up.

Only rows of processes that are gone are repaired: a row names its process as
``host:pid:start-time``; on this host a live pid with the same start time is
still working. Rows of other hosts are left alone (one ``balsam up`` per data
directory; replicas on several hosts need a lease, which is not built yet).

``BALSAM_TEST_CRASH_AT=<kind>:<step>`` makes the process die (``os._exit``) at
that step: fault injection for the crash tests, read from the environment of
the server process only.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import delete, select

from balsam.context import AppContext
from balsam.db.models import Branch, Credential, PendingOperation, Project, Workspace
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.workspaces.service import WorkspaceService
from balsam.errors import BalsamError

log = logging.getLogger(__name__)

_CRASH_AT = "BALSAM_TEST_CRASH_AT"


def crash_point(kind: str, step: str) -> None:
    """Die here, at once and without cleanup, if fault injection asks for it."""
    if os.environ.get(_CRASH_AT) == f"{kind}:{step}":
        os._exit(137)


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@cache
def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or ''}"


def _gone(process: str) -> bool:
    host, _, rest = process.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return False
    return not pid.isdigit() or _start_time(int(pid)) != started


class Journal:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @contextmanager
    def running(self, kind: str, project_id: str, actor: Actor, subject: str = ""
                ) -> Iterator[None]:
        """Journal the operation while the block runs. The row stays behind only if
        the process dies inside the block."""
        with self.ctx.sessions() as session, session.begin():
            row = PendingOperation(kind=kind, project_id=project_id, subject=subject,
                                   actor=actor.username[:64],
                                   request_id=actor.request_id[:64], process=this_process())
            session.add(row)
            session.flush()
            op_id = row.id
        try:
            yield
        finally:
            with self.ctx.sessions() as session, session.begin():
                session.execute(delete(PendingOperation).where(PendingOperation.id == op_id))


def recover(ctx: AppContext) -> int:
    """Repair every operation whose process is gone; return how many were repaired.
    A repair that fails stays journaled (and logged) for the next start."""
    with ctx.sessions() as session:
        rows = [(r.id, r.kind, r.project_id, r.subject, r.actor, r.request_id,
                 r.started_at.isoformat(), r.process)
                for r in session.scalars(select(PendingOperation).order_by(PendingOperation.id))]
    repaired = 0
    for op_id, kind, project_id, subject, actor, request_id, started, process in rows:
        if not _gone(process):
            continue
        try:
            outcome = _REPAIRS[kind](ctx, project_id, subject)
        except (BalsamError, KeyError, OSError) as exc:
            log.warning("could not repair interrupted %s of %s: %s", kind, project_id, exc)
            continue
        with ctx.sessions() as session, session.begin():
            session.execute(delete(PendingOperation).where(PendingOperation.id == op_id))
        target = f"project:{project_id}" + (f"/branch:{subject}" if subject else "")
        ctx.audit.record(AuditRecord(
            actor=actor, action=kind, target=target, outcome="failure",
            project_id=project_id, request_id=request_id,
            details={"interrupted": True, "startedAt": started, "repair": outcome,
                     "repairedBy": "balsam (crash recovery)"}))
        log.info("repaired interrupted %s of %s: %s", kind, target, outcome)
        repaired += 1
    return repaired


def _project_create(ctx: AppContext, project_id: str, _: str) -> str:
    with ctx.sessions() as session:
        if session.get(Project, project_id) is not None:
            return "completed"
    storage, git = ctx.providers.storage, ctx.providers.git
    storage.revoke_bucket_keys(project_id)
    storage.delete_bucket(project_id)
    git.delete_repository(project_id)
    return "undone"


def _project_delete(ctx: AppContext, project_id: str, _: str) -> str:
    with ctx.sessions() as session:
        keys = session.scalars(select(Credential.access_key)
                               .where(Credential.project_id == project_id)).all()
        workspaces = session.scalars(select(Workspace.id)
                                     .where(Workspace.project_id == project_id)).all()
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
        project = session.get(Project, project_id)
    if project is None:
        return "undone"
    if branch in ctx.providers.git.list_branches(project_id):
        ctx.providers.git.delete_branch(project_id, branch)
    ctx.providers.storage.delete_prefix(project.bucket, f"{branch}/")
    return "undone"


def _branch_delete(ctx: AppContext, project_id: str, branch: str) -> str:
    with ctx.sessions() as session:
        project = session.get(Project, project_id)
    if project is None:
        return "completed"
    ctx.providers.storage.delete_prefix(project.bucket, f"{branch}/")
    if branch in ctx.providers.git.list_branches(project_id):
        ctx.providers.git.delete_branch(project_id, branch)
    with ctx.sessions() as session, session.begin():
        row = session.get(Branch, (project_id, branch))
        if row is not None:
            session.delete(row)
    return "completed"


_REPAIRS = {
    "project.create": _project_create,
    "project.delete": _project_delete,
    "branch.create": _branch_create,
    "branch.delete": _branch_delete,
}
