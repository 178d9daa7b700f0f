"""The background worker that runs imports (:mod:`.import_runs`): ``imports.workers``
threads of a :class:`~balsam.domain.queue_worker.QueueWorker`. Stopping ends running
imports cleanly (their writes aborted, each ``failed``: start it again); a process that
dies instead leaves them ``running`` for the crash recovery.
"""

from __future__ import annotations

from balsam.context import AppContext
from balsam.domain.data.import_runs import claim_next, run_import
from balsam.domain.queue_worker import QueueWorker

#: Seconds between looks for imports queued elsewhere.
POLL_SECONDS = 5.0


class ImportWorker(QueueWorker):
    def __init__(self, ctx: AppContext, *, poll: float = POLL_SECONDS) -> None:
        super().__init__(
            ctx,
            name="import",
            workers=ctx.settings.imports.workers,
            claim_next=claim_next,
            run_one=run_import,
            poll=poll,
        )
