"""Multi-step operations with compensations (a tiny saga).

Each completed step registers its inverse; if a later step fails, the
inverses run newest-first. A failing inverse does not stop the others: its
error is collected so the caller can audit what could not be undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from balsam.errors import ProviderError

T = TypeVar("T")

log = logging.getLogger(__name__)


class Compensations:
    """Use as ``with Compensations() as undo: ...; undo.push(name, fn)``.

    On an exception inside the block every pushed inverse runs (newest first)
    and the exception propagates; on success nothing is undone.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self.failed: list[str] = []
        self.undone: list[str] = []

    def push(self, name: str, inverse: Callable[[], object]) -> None:
        self._undo.append((name, inverse))

    def step(
        self,
        name: str,
        action: Callable[[], T],
        inverse: Callable[[], object],
        *,
        keep_on: tuple[type[BaseException], ...] = (),
    ) -> T:
        """Run ``action`` and register ``inverse``, also when ``action`` fails:
        a step may fail after doing part of its work, and inverses are idempotent.
        Errors in ``keep_on`` (e.g. Conflict: the thing belongs to someone else)
        register nothing."""
        try:
            result = action()
        except keep_on:
            raise
        except BaseException:
            self.push(name, inverse)
            raise
        self.push(name, inverse)
        return result

    def attempt(self, name: str, action: Callable[[], T]) -> T:
        """Run ``action``, whose own failure it undoes itself. If the provider says
        the failure is unsettled (``ProviderError.unsettled``: part of it may be left
        on the backend), record ``name`` as not undone, so the journal keeps the
        operation and the repair sweeps what is left."""
        try:
            return action()
        except ProviderError as exc:
            if exc.unsettled:
                self.failed.append(name)
            raise

    def __enter__(self) -> Compensations:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            return
        for name, inverse in reversed(self._undo):
            try:
                inverse()
                self.undone.append(name)
            except Exception:
                log.exception("could not undo step %s", name)
                self.failed.append(name)
