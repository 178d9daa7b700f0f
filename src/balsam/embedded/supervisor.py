"""Keeping an embedded service running: a crash is logged and the service restarted.

:class:`Supervisor` owns one child service (anything with ``start()``,
``stop()`` and ``exit_status()``, such as
:class:`balsam.embedded.seaweedfs.SeaweedServer`) from ``start()`` to
``stop()``. Its thread polls the child a few times a second; when the child
has exited on its own it logs the exit status and restarts it after a pause
that starts at ``min_backoff`` and doubles after each failed restart, up to
``max_backoff``. A child that stayed up ``stable_after`` seconds starts the
count again. Meanwhile clients of the service fail fast (connection refused)
and the web layer answers 503 with ``Retry-After``.

Why every start and the final stop happen on the supervisor's thread: the
child gets the kernel's parent-death signal when the *thread* that started it
ends, so the one thread that outlives every start must be the one that stops
it. A paused child (SIGSTOP) is not restarted: it has not exited, and client
timeouts bound every request meanwhile.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Protocol

from balsam.embedded.seaweedfs import EmbeddedServiceError

log = logging.getLogger(__name__)

#: Defaults: the first restart comes after half a second; a service that keeps
#: crashing is restarted at most every 10 s; 10 s up counts as recovered.
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
STABLE_AFTER_S = 10.0


class SupervisedService(Protocol):
    """What :class:`Supervisor` needs of a child service."""

    def start(self) -> None:
        """Start and return once it serves; EmbeddedServiceError otherwise."""

    def stop(self) -> None:
        """Stop it (idempotent)."""

    def exit_status(self) -> int | None:
        """Its status if it exited on its own since ``start()``; else None."""


class Supervisor:
    """Starts ``service``, restarts it whenever it exits, stops it on ``stop()``.

    ``name`` appears in the log. ``start()`` raises what the first
    ``service.start()`` raises (nothing is left running then); later failures
    to start are logged and retried, never raised. ``restarts`` counts
    successful restarts."""

    def __init__(
        self,
        service: SupervisedService,
        *,
        name: str = "SeaweedFS",
        min_backoff: float = MIN_BACKOFF_S,
        max_backoff: float = MAX_BACKOFF_S,
        stable_after: float = STABLE_AFTER_S,
        poll_interval: float = 0.1,
    ) -> None:
        self.service = service
        self.name = name
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.poll_interval = poll_interval
        self.restarts = 0
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._first_error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the service on the supervisor's thread; return once it serves."""
        self._thread = threading.Thread(target=self._run, name=f"supervise-{self.name}",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        try:
            self._started.wait()
        except BaseException:  # Ctrl-C while it starts: leave nothing running
            self.stop()
            raise
        if self._first_error is not None:
            self._thread.join()
            raise self._first_error

    def stop(self, timeout: float = 60.0) -> None:
        """Stop supervising and stop the service (on its thread); idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.service.stop()  # a no-op unless the thread did not finish in time

    def _run(self) -> None:
        try:
            self.service.start()
        except BaseException as exc:
            self._first_error = exc
            return
        finally:
            self._started.set()
        try:
            self._watch()
        finally:
            self.service.stop()

    def _watch(self) -> None:
        backoff, up_since, down = self.min_backoff, time.monotonic(), False
        while not self._stopping.wait(self.poll_interval):
            if not down:
                status = self.service.exit_status()
                if status is None:
                    if time.monotonic() - up_since > self.stable_after:
                        backoff = self.min_backoff
                    continue
                log.error("%s exited unexpectedly (%s); restarting in %.1f s",
                          self.name, describe_status(status), backoff)  # fmt: skip
            down = not self._restart(backoff)
            up_since = time.monotonic()
            backoff = min(backoff * 2, self.max_backoff)

    def _restart(self, delay: float) -> bool:
        """Wait ``delay`` seconds (unless stopping), then start the service again."""
        self.service.stop()  # release what the dead child held (sockets folder)
        if self._stopping.wait(delay):
            return False
        started = time.monotonic()
        try:
            self.service.start()
        except EmbeddedServiceError as exc:
            log.error("%s did not restart: %s", self.name, exc)
            return False
        self.restarts += 1
        log.warning("%s restarted (%.1f s)", self.name, time.monotonic() - started)
        return True


def describe_status(status: int) -> str:
    """``exit status 3`` or ``killed by SIGKILL``."""
    if status >= 0:
        return f"exit status {status}"
    try:
        return f"killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"killed by signal {-status}"
