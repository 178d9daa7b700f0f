"""The crash journal: multi-step operations that survive a ``kill -9``.

A multi-step operation (project, branch, key and workspace create and delete)
writes a :class:`~balsam.db.models.PendingOperation` row, in its own committed
transaction, before its first side effect, and removes it when it has finished
or has been undone in-process (:class:`balsam.domain.steps.Compensations`). A
row that outlives its process therefore names an operation interrupted at an
unknown step; :mod:`balsam.domain.recovery` repairs it at the next start. A row
also stays (marked :data:`UNDO_FAILED`) when an inverse failed, or when an
operation without inverses (a delete, a revoke) failed part way: the periodic
repair then undoes or finishes it while Balsam runs.

Only rows of processes that are gone are repaired: a row names its process as
``host:pid:start-time``; on this host a live pid with the same start time is
still working. Rows of other hosts are left alone (one ``balsam up`` per data
directory; replicas on several hosts need a lease, which is not built yet).

``BALSAM_TEST_CRASH_AT=<kind>:<step>`` makes the process die (``os._exit``) at
that step: fault injection for the crash tests, read from the environment of
the server process only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import delete, select, update

from balsam.context import AppContext
from balsam.db.models import PendingOperation
from balsam.domain.identity.service import Actor
from balsam.domain.steps import Compensations
from balsam.errors import BalsamError

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


#: ``process`` of a row whose operation failed in-process and could not undo all of
#: its steps, or a delete that failed part way (storage down, say): repaired like a
#: crashed one, as soon as possible.
UNDO_FAILED = "undo-failed"


def gone(process: str) -> bool:
    """Whether the operation a journal row names is over: its process has died (on
    this host), or it failed and left steps it could not undo."""
    if process == UNDO_FAILED:
        return True
    host, _, rest = process.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return False
    return not pid.isdigit() or _start_time(int(pid)) != started


class RepairPending(BalsamError):
    """An earlier operation on the project left parts it could not undo (or a delete
    it could not finish), and they have not been repaired yet: the periodic repair
    (every :data:`REPAIR_INTERVAL` seconds) will, so this is a 503 with Retry-After."""

    status = 503
    reason = "repair-pending"
    title = "Waiting for repair"


#: Seconds between periodic repairs while Balsam runs (balsam.domain.recovery).
REPAIR_INTERVAL = 30


class Journal:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @contextmanager
    def running(
        self,
        kind: str,
        project_id: str,
        actor: Actor,
        subject: str = "",
        *,
        undo: Compensations | None = None,
        after_the_fact: bool = False,
    ) -> Iterator[None]:
        """Journal the operation while the block runs; with ``undo``, also run the
        block inside it (its inverses run on an exception, before the row goes).

        The row stays behind if the process dies inside the block, or if an inverse
        failed: then the next repair (:mod:`balsam.domain.recovery`) finishes the
        undo. Until it has, no new operation on the project starts
        (:class:`RepairPending`), so a repair never races one — unless
        ``after_the_fact``: the rest of a change that has already happened elsewhere
        (a branch git deleted), which must be journaled whatever else is pending."""
        with self.ctx.sessions() as session, session.begin():
            if (
                not after_the_fact
                and session.scalar(
                    select(PendingOperation.id)
                    .where(
                        PendingOperation.project_id == project_id,
                        PendingOperation.process == UNDO_FAILED,
                    )
                    .limit(1)
                )
                is not None
            ):
                raise RepairPending(
                    "An earlier operation on this project could not be completed or undone "
                    "and is waiting for repair; try again shortly.",
                    details={"retryAfterSeconds": REPAIR_INTERVAL},
                )
            row = PendingOperation(
                kind=kind,
                project_id=project_id,
                subject=subject,
                actor=actor.username[:64],
                request_id=actor.request_id[:64],
                process=this_process(),
            )
            session.add(row)
            session.flush()
            op_id = row.id
        steps = undo or Compensations()
        unfinished = False
        try:
            with steps:
                yield
        except BaseException:
            # Without inverses an operation only goes forward (a delete, a revoke): one
            # that failed part way (storage down) is finished by the repair, never left
            # half done (a workspace without its home but with a live key).
            unfinished = undo is None
            raise
        finally:
            keep = bool(steps.failed) or unfinished
            with self.ctx.sessions() as session, session.begin():
                target = PendingOperation.id == op_id
                if keep:
                    session.execute(
                        update(PendingOperation).where(target).values(process=UNDO_FAILED)
                    )
                else:
                    session.execute(delete(PendingOperation).where(target))
