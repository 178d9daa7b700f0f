"""Part-sized buffers for resumable uploads, used again from one part to the next.

A new 8 MiB ``bytearray`` costs more than filling it: the allocator maps fresh pages
for it (``balsam up`` keeps its heap small, see :mod:`balsam.heap`), each page faults
and is zeroed by the kernel, then ``bytearray`` zeroes it again, all before the first
byte of the part arrives. Measured with a profiler during a 1 GiB upload, that was
about a third as much time as the upload's SHA-256, in the event loop's thread. A
buffer given back is kept for the next part of the same length, at most :attr:`keep`
of them and only while uploads continue: a minute after the last part, every buffer
kept is released, so an idle server holds none.

Used from the event loop's thread only (no lock).
"""

from __future__ import annotations

import asyncio
import time

from starlette.concurrency import run_in_threadpool


class PartBuffers:
    """Buffers of the lengths parts have; :meth:`take` one, :meth:`give` it back."""

    def __init__(self, keep: int = 4, idle_seconds: float = 60.0) -> None:
        self.keep, self.idle_seconds = keep, idle_seconds
        self._free: list[bytearray] = []
        self._last_use = 0.0
        self._release: asyncio.TimerHandle | None = None

    async def take(self, length: int) -> bytearray:
        """A buffer of ``length`` bytes (its content is whatever it held)."""
        self._last_use = time.monotonic()
        for i in range(len(self._free) - 1, -1, -1):  # the newest first
            if len(self._free[i]) == length:
                return self._free.pop(i)
        # Zeroing a new one takes milliseconds: not in the event loop's thread.
        return await run_in_threadpool(bytearray, length)

    def give(self, buffer: bytearray) -> None:
        """Keep ``buffer`` for a later part (the caller no longer uses it)."""
        self._last_use = time.monotonic()
        self._free.append(buffer)
        del self._free[: -self.keep]  # the oldest go first
        if self._release is None:
            loop = asyncio.get_running_loop()
            self._release = loop.call_later(self.idle_seconds, self._release_when_idle)

    @property
    def kept(self) -> int:
        """How many buffers are kept now."""
        return len(self._free)

    def _release_when_idle(self) -> None:
        self._release = None
        idle = time.monotonic() - self._last_use
        if idle >= self.idle_seconds:
            self._free.clear()
        elif self._free:
            loop = asyncio.get_running_loop()
            self._release = loop.call_later(self.idle_seconds - idle, self._release_when_idle)
