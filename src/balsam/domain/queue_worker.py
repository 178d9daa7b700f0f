"""Daemon threads that take queued work (imports, runs) from the database.

A :class:`QueueWorker` keeps ``workers`` threads; each claims the oldest queued item
(``claim_next``: a conditional update, so two threads or processes never take the
same), runs it (``run_one``), and otherwise waits until :meth:`~QueueWorker.wake` (new
work) or ``poll`` seconds (work queued by another process sharing the database). The
app's lifespan starts and stops it. Stopping tells running items to end
(``stopping()`` turns true); a process that dies instead leaves them ``running`` for
the crash recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import DataImport, Run, utcnow
from balsam.domain.journal import this_process

log = logging.getLogger(__name__)

ClaimNext = Callable[[AppContext], "str | None"]
#: Queued work: rows with id, state (queued → running), created_by, created_at,
#: process and started_at.
Queued = type[DataImport] | type[Run]


def claim_oldest(ctx: AppContext, model: Queued) -> str | None:
    """Take the oldest queued row of ``model`` whose creator has none running (one
    person's slow work must not hold every worker) for this process: ``running``, with
    the process's name, in one conditional update, so no two take the same. Its id, or
    None."""
    busy = select(model.created_by).where(model.state == "running")
    while True:
        with ctx.sessions() as session:
            item = session.scalar(
                select(model.id)
                .where(model.state == "queued", model.created_by.not_in(busy))
                .order_by(model.created_at, model.id)
                .limit(1)
            )
        if item is None:
            return None
        if claim_row(ctx, model, item):
            return str(item)


def claim_row(ctx: AppContext, model: Queued, item: str) -> bool:
    """Take ``item`` for this process if it is still queued."""
    with ctx.sessions() as session, session.begin():
        taken = session.execute(
            update(model)
            .where(model.id == item, model.state == "queued")
            .values(state="running", process=this_process(), started_at=utcnow())
        )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


RunOne = Callable[[AppContext, str, Callable[[], bool]], None]


class QueueWorker:
    def __init__(
        self,
        ctx: AppContext,
        *,
        name: str,
        workers: int,
        claim_next: ClaimNext,
        run_one: RunOne,
        poll: float = 5.0,
    ) -> None:
        self.ctx, self.name, self.workers, self.poll = ctx, name, workers, poll
        self._claim_next, self._run_one_item = claim_next, run_one
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"balsam-{self.name}-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Work was queued: a waiting thread takes it now."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop within ``timeout`` seconds in all: an item still busy past that is left
        to its daemon thread (and, if the process ends, to the crash recovery)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if not self._run_one():
                self._wake.wait(self.poll)

    def _run_one(self) -> bool:
        """Run one queued item; False when there was none (or the database failed)."""
        try:
            item = self._claim_next(self.ctx)
        except Exception:  # never let the thread die; the next round retries
            log.exception("could not look for queued %s", self.name)
            return False
        if item is None:
            return False
        try:
            self._run_one_item(self.ctx, item, self._stop.is_set)
        except Exception:  # the database failed as it ended: the crash recovery settles it
            log.exception("%s %s could not be ended", self.name, item)
        return True
