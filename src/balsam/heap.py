"""The control plane's heap: large buffers come from and go back to the kernel.

Uploads pass through in buffers of 8 MiB (parts), filled and freed in thread-pool
threads. glibc's malloc raises its mmap threshold to the size of each such buffer freed
(up to 32 MiB), after which they come from per-thread arenas that keep the memory when
it is freed: a 2 GiB upload left ``balsam up`` tens of MB larger than it needed (see
docs/benchmarks.md, *Data*). A fixed threshold turns that off: blocks of 1 MiB and more
are mapped and unmapped each time (a page-fault cost far below the network's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt's parameter numbers (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
#: Blocks at least this large are mapped on their own and returned when freed.
MMAP_THRESHOLD = 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def keep_heap_small() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` for this process; False
    where the C library is not glibc (nothing changes there)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        log.warning("could not fix malloc's mmap threshold")
    return done
