"""The background worker that runs imports (:mod:`.import_runs`).

:class:`ImportWorker` keeps ``imports.workers`` daemon threads; each claims the oldest
queued import, runs it, and otherwise waits until :meth:`~ImportWorker.wake` (a new
import) or :data:`POLL_SECONDS` (imports queued by another process sharing the
database). The app's lifespan starts and stops it. Stopping ends running imports
cleanly (their writes aborted, each ``failed``: start it again); a process that dies
instead leaves them ``running`` for the crash recovery.
"""

from __future__ import annotations

import logging
import threading
import time

from balsam.context import AppContext
from balsam.domain.data.import_runs import claim_next, run_import

log = logging.getLogger(__name__)

#: Seconds between looks for imports queued elsewhere.
POLL_SECONDS = 5.0


class ImportWorker:
    def __init__(self, ctx: AppContext, *, poll: float = POLL_SECONDS) -> None:
        self.ctx, self.poll = ctx, poll
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
            threading.Thread(target=self._run, name=f"balsam-import-{n}", daemon=True)
            for n in range(self.ctx.settings.imports.workers)
        ]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """An import was queued: a waiting thread takes it now."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop within ``timeout`` seconds in all: an import waiting on a slow source
        past that is left to its daemon thread (and, if the process ends, to the crash
        recovery)."""
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
        """Run one queued import; False when there was none (or the database failed)."""
        try:
            import_id = claim_next(self.ctx)
        except Exception:  # never let the thread die; the next round retries
            log.exception("could not look for queued imports")
            return False
        if import_id is None:
            return False
        try:
            run_import(self.ctx, import_id, cancelled=self._stop.is_set)
        except Exception:  # the database failed as it ended: the crash recovery settles it
            log.exception("import %s could not be ended", import_id)
        return True
