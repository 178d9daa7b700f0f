"""The background worker that keeps knowledge libraries in sync.

:class:`LibrarySyncWorker` is one daemon thread draining a de-duplicated
queue of library ids (registrations, sync requests, changed URLs) and
enqueueing every library that is due each ``library_sync_interval_seconds``.
The app's lifespan starts and stops it; each sync is
:meth:`balsam.domain.library.sync.LibrarySyncer.sync_now`, serialised per
library by the mirror's lock, so several workers (or replicas sharing the
data folder) never fetch into one mirror at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import timedelta

from sqlalchemy import ColumnElement, or_, select

from balsam.context import AppContext
from balsam.db.models import KnowledgeLibrary, utcnow
from balsam.domain.library.sync import LibrarySyncer
from balsam.errors import NotFound

log = logging.getLogger(__name__)


class LibrarySyncWorker:
    """One background thread that syncs the libraries it is given, and every
    library that is due each ``interval`` seconds (0: no periodic syncs).

    ``start`` also enqueues libraries that never finished a sync (e.g. the
    process stopped while one was pending). ``stop`` lets the current sync
    finish for up to ``timeout`` seconds; the thread is a daemon either way.
    """

    def __init__(self, ctx: AppContext, *, interval: float | None = None) -> None:
        self.ctx = ctx
        self.interval = ctx.settings.library_sync_interval_seconds if interval is None else interval
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: How often due libraries are looked for: each is synced at most
        #: ``interval + tick`` seconds after its previous attempt.
        self._tick = min(float(self.interval), 60.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._thread = threading.Thread(target=self._run, name="balsam-library-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def submit(self, library_id: str) -> None:
        """Queue a sync of ``library_id`` unless one is already queued."""
        with self._lock:
            if library_id in self._pending:
                return
            self._pending.add(library_id)
        self._queue.put(library_id)

    def _run(self) -> None:
        self._enqueue_due(startup=True)
        next_tick = time.monotonic() + self._tick
        while True:
            wait = max(0.0, next_tick - time.monotonic()) if self._tick else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                self._enqueue_due(startup=False)
                next_tick = time.monotonic() + self._tick
                continue
            if item is None:
                return
            with self._lock:
                self._pending.discard(item)
            self._sync_one(item)

    def _sync_one(self, library_id: str) -> None:
        try:
            LibrarySyncer(self.ctx).sync_now(library_id)
        except NotFound:
            pass  # removed after it was queued
        except Exception:
            log.exception("syncing library %s failed unexpectedly", library_id)

    def _enqueue_due(self, *, startup: bool) -> None:
        try:
            for library_id in self._due(startup=startup):
                self.submit(library_id)
        except Exception:
            log.exception("could not list libraries to sync")

    def _due(self, *, startup: bool) -> list[str]:
        """Libraries never attempted (or left pending/syncing, on startup), and
        with periodic syncs on, those not attempted for ``interval`` seconds."""
        conditions: list[ColumnElement[bool]] = [KnowledgeLibrary.last_attempt_at.is_(None)]
        if startup:
            conditions.append(KnowledgeLibrary.sync_status.in_(("pending", "syncing")))
        if self.interval:
            cutoff = utcnow() - timedelta(seconds=self.interval)
            conditions.append(KnowledgeLibrary.last_attempt_at <= cutoff)
        with self.ctx.sessions() as session:
            return list(
                session.scalars(
                    select(KnowledgeLibrary.id)
                    .where(or_(*conditions))
                    .order_by(KnowledgeLibrary.id)
                )
            )
