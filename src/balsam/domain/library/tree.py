"""Reading one commit of a library mirror through git objects, never the filesystem.

A :class:`LibraryTree` is ``(git dir, commit)``. Everything it serves comes
from ``git ls-tree -r -t -z -l <commit>`` and ``git cat-file blob <sha>``:

* Only regular files (modes 100644 and 100755) and folders exist. Symlinks
  (120000) and submodules (160000) are neither listed nor readable, so a
  committed link to ``/etc/passwd`` or ``../../`` reads nothing.
* A path exists only if the listing holds it verbatim: absolute paths,
  ``..``, empty segments, backslashes and paths that are not UTF-8 are
  :class:`~balsam.errors.NotFound`.
* Listings are cached per ``(git dir, commit)``: a commit never changes.

``commit=None`` is a library that has not been synced yet: an empty tree.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from balsam.children import dying_with_parent
from balsam.errors import NotFound, PayloadTooLarge, ProviderError
from balsam.providers.git.base import TreeEntry
from balsam.providers.git.local import git_environment, is_safe_path, stream_blob

_FILE_MODES = frozenset({"100644", "100755"})
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?\Z")
CHUNK = 64 * 1024


@dataclass(frozen=True)
class _Listing:
    """One commit's tree: public entries plus the blob sha of every file."""

    entries: tuple[TreeEntry, ...]
    blobs: dict[str, tuple[str, int]]
    folders: frozenset[str]


def _parse(output: bytes) -> _Listing:
    """Parse ``ls-tree -r -t -z -l``; drop links, submodules and unsafe paths."""
    entries: list[TreeEntry] = []
    blobs: dict[str, tuple[str, int]] = {}
    for record in output.split(b"\x00"):
        if not record:
            continue
        meta, raw_path = record.split(b"\t", 1)
        mode, kind, sha, size = meta.decode("ascii").split()
        try:
            path = raw_path.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not is_safe_path(path):
            continue
        name = path.rsplit("/", 1)[-1]
        if kind == "tree":
            entries.append(TreeEntry(path=path, name=name, type="Folder"))
        elif kind == "blob" and mode in _FILE_MODES:
            entries.append(TreeEntry(path=path, name=name, type="File", size=int(size)))
            blobs[path] = (sha, int(size))
    entries.sort(key=lambda e: e.path)
    folders = frozenset(e.path for e in entries if e.type == "Folder")
    return _Listing(tuple(entries), blobs, folders)


def _git(git_dir: Path, args: list[str], timeout: float, *, stdin: bytes | None = None) -> bytes:
    """stdout of ``git --git-dir=<git_dir> args``; NotFound when the mirror is
    gone or lacks the object, ProviderError on a timeout. git dies with Balsam
    (``subprocess.run`` holds this thread until it has ended)."""
    try:
        result = subprocess.run(
            dying_with_parent(["git", f"--git-dir={git_dir}", *args]),
            input=stdin,
            capture_output=True,
            check=False,
            env=git_environment(),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"git {args[0]} timed out") from exc
    if result.returncode != 0:
        raise NotFound("The library's content is not available.")
    return result.stdout


def _split_batch(out: bytes) -> list[bytes]:
    """The contents in ``git cat-file --batch`` output (``<sha> blob <size>\\n<data>\\n``)."""
    contents, offset = [], 0
    while offset < len(out):
        header_end = out.index(b"\n", offset)
        header = out[offset:header_end].split()
        if len(header) != 3:  # "<sha> missing": the mirror lost an object
            raise NotFound("The library's content is not available.")
        size = int(header[2])
        contents.append(out[header_end + 1 : header_end + 1 + size])
        offset = header_end + 1 + size + 1
    return contents


@lru_cache(maxsize=64)
def _load(git_dir: Path, commit: str, timeout: float) -> _Listing:
    return _parse(_git(git_dir, ["ls-tree", "-r", "-t", "-z", "-l", commit], timeout))


class LibraryTree:
    """The files of one library commit (see the module docstring for the rules)."""

    def __init__(self, git_dir: Path, commit: str | None, *, timeout: float = 60.0) -> None:
        if commit is not None and not _SHA.match(commit):
            raise ValueError(f"not a commit sha: {commit!r}")
        self.git_dir = Path(git_dir)
        self.commit = commit
        self._timeout = timeout

    def _listing(self) -> _Listing:
        if self.commit is None:
            return _Listing((), {}, frozenset())
        return _load(self.git_dir, self.commit, self._timeout)

    def entries(self) -> list[TreeEntry]:
        """Every file and folder, recursively, sorted by path."""
        return list(self._listing().entries)

    def is_file(self, path: str) -> bool:
        return path in self._listing().blobs

    def is_folder(self, path: str) -> bool:
        return path in self._listing().folders

    def blob_ids(self) -> dict[str, str]:
        """``path → git blob id`` of every file (equal ids: equal content)."""
        return {path: sha for path, (sha, _size) in self._listing().blobs.items()}

    def size(self, path: str) -> int:
        """Size in bytes of the file at ``path``; NotFound if it is not a file."""
        return self._blob(path)[1]

    def files_under(self, folder: str) -> list[str]:
        """Paths of every file below ``folder`` (recursively; ``""`` is the root),
        sorted; empty when ``folder`` is not a folder."""
        if folder and not self.is_folder(folder):
            return []
        prefix = f"{folder}/" if folder else ""
        return sorted(p for p in self._listing().blobs if p.startswith(prefix))

    def children(self, folder: str) -> list[TreeEntry]:
        """The direct children of ``folder`` (``""`` is the root), sorted by path."""
        prefix = f"{folder}/" if folder else ""
        return [
            e
            for e in self._listing().entries
            if e.path.startswith(prefix) and "/" not in e.path[len(prefix) :]
        ]

    def read(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """Content of the file at ``path``. NotFound unless it is a regular file
        of this commit; PayloadTooLarge if it is larger than ``max_bytes``."""
        sha, size = self._blob(path)
        if max_bytes is not None and size > max_bytes:
            raise PayloadTooLarge(f"'{path}' is larger than {max_bytes} bytes.")
        return _git(self.git_dir, ["cat-file", "blob", sha], self._timeout)

    def read_many(self, paths: list[str], *, max_bytes: int) -> dict[str, bytes]:
        """Contents of several files with one git process: every path that is a
        file of this commit and at most ``max_bytes`` long (the rest are left out)."""
        listing = self._listing()
        wanted = [
            (p, listing.blobs[p])
            for p in paths
            if p in listing.blobs and listing.blobs[p][1] <= max_bytes
        ]
        if not wanted:
            return {}
        shas = "".join(f"{sha}\n" for _path, (sha, _size) in wanted).encode()
        out = _git(self.git_dir, ["cat-file", "--batch"], self._timeout, stdin=shas)
        return dict(zip([p for p, _blob in wanted], _split_batch(out), strict=True))

    def stream(self, path: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The file's content in chunks, without holding it in memory. NotFound
        is raised here, before iteration starts; the git process is ended when
        the iterator is closed or garbage-collected."""
        sha, _size = self._blob(path)
        return stream_blob(self.git_dir, sha, chunk_size)

    def _blob(self, path: str) -> tuple[str, int]:
        blob = self._listing().blobs.get(path)
        if blob is None:
            raise NotFound("No such file.")
        return blob
