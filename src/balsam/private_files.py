"""Files only Balsam's user may read (keys, credentials), created once."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def create_once(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` (0600, in a 0700 folder) unless it exists: written
    whole to a scratch file, then linked into place, so a reader never sees half of
    it and, of two writers at once, the first wins and the second's content is dropped."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # first writer wins
            os.link(scratch, path)  # atomic, and never overwrites
    finally:
        scratch.unlink(missing_ok=True)
