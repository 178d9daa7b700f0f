"""The background worker that runs queued runs (:mod:`.execution`): ``runs.workers``
threads of a :class:`~balsam.domain.queue_worker.QueueWorker`. Stopping kills running
runs' runners (each ends ``cancelled``); a process that dies instead leaves them
``running`` for the crash recovery (:mod:`.recovery`).
"""

from __future__ import annotations

from balsam.context import AppContext
from balsam.domain.queue_worker import QueueWorker
from balsam.domain.runs.execution import claim_next, run_run

POLL_SECONDS = 5.0


class RunWorker(QueueWorker):
    def __init__(self, ctx: AppContext, *, poll: float = POLL_SECONDS) -> None:
        super().__init__(
            ctx,
            name="run",
            workers=ctx.settings.runs.workers,
            claim_next=claim_next,
            run_one=run_run,
            poll=poll,
        )
