"""Readiness: is each part Balsam depends on answering, right now?

Each component is checked in a thread of its own, and the whole answer takes at
most ``timeout`` seconds: a paused storage server or a locked database makes
its component ``timeout``, never the health request hang. A check still
running from an earlier request is not started again (its component stays
``timeout`` until it returns), so a hung backend cannot pile up threads.

The answer holds states only, never error texts: it is served without
authentication, to load balancers and orchestrators.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text

from balsam.context import AppContext

State = Literal["ok", "failing", "timeout", "stopped"]

#: A bucket name no project can have (project buckets never start with "x-"):
#: asking whether it exists exercises the storage server's auth and metadata path.
_PROBE_BUCKET = "x-balsam-health-probe"


@dataclass(frozen=True)
class Readiness:
    components: dict[str, State]

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.components.values())


class CheckRunner:
    """Runs checks with one in-flight check per component; one per app, shared by
    its requests."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")
        self._inflight: dict[str, Future[bool]] = {}
        self._guard = threading.Lock()

    def run(self, checks: dict[str, Callable[[], bool]], timeout: float) -> dict[str, State]:
        with self._guard:
            futures = {}
            for name, check in checks.items():
                running = self._inflight.get(name)
                if running is None or running.done():
                    running = self._inflight[name] = self._executor.submit(check)
                futures[name] = running
        wait(futures.values(), timeout=timeout)
        return {name: _state(future) for name, future in futures.items()}


def _state(future: Future[bool]) -> State:
    if not future.done():
        return "timeout"
    if future.exception() is not None:
        return "failing"
    return "ok" if future.result() else "failing"


class HealthService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def readiness(
        self, runner: CheckRunner, *, library_sync_running: bool, timeout: float = 3.0
    ) -> Readiness:
        """The state of the database, storage, git, the workspace supervisor and the
        knowledge-library sync, within ``timeout`` seconds (checks run in ``runner``)."""
        ctx = self.ctx
        checks: dict[str, Callable[[], bool]] = {
            "database": self._database,
            "storage": self._storage,
            "git": self._git,
            "disk": self._disk,
        }
        states = runner.run(checks, timeout)
        states["workspaces"] = "ok" if ctx.supervisor.running else "stopped"
        states["librarySync"] = "ok" if library_sync_running else "stopped"
        return Readiness(states)

    def _database(self) -> bool:
        with self.ctx.engine.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar() == 1

    def _storage(self) -> bool:
        self.ctx.providers.storage.bucket_exists(_PROBE_BUCKET)  # ProviderError when down
        return True

    def _disk(self) -> bool:
        """Enough room left for users other than root (workspaces, and root's reserve
        for Balsam itself is not counted)."""
        found = os.statvfs(self.ctx.settings.data_dir)
        return found.f_bavail * found.f_frsize >= self.ctx.settings.min_free_disk_mib * 2**20

    def _git(self) -> bool:
        self.ctx.providers.git.check()  # ProviderError when the repositories are gone
        return True
