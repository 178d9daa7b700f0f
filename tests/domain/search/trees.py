"""Trees for indexing tests and the benchmark: a folder on disk, and a dict in
memory that counts reads and can offer git blob ids."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from balsam.domain.search.documents import blob_hash
from balsam.providers.git.base import TreeEntry

SCB_LIBRARY = Path(__file__).resolve().parents[4] / "shared" / "upstream" / "knowledge-library"


class DirectoryTree:
    """The files under ``root`` (``.git`` left out), like a checked-out commit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entries(self) -> list[TreeEntry]:
        found = []
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if rel.parts[0] == ".git":
                continue
            if path.is_file():
                found.append(
                    TreeEntry(
                        path=rel.as_posix(), name=path.name, type="File", size=path.stat().st_size
                    )
                )
            else:
                found.append(TreeEntry(path=rel.as_posix(), name=path.name, type="Folder"))
        return found

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()


class MemoryTree:
    """``path → content``; counts :meth:`read` calls per path."""

    def __init__(self, files: Mapping[str, bytes | str]) -> None:
        self.files = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}
        self.reads: list[str] = []

    def entries(self) -> list[TreeEntry]:
        folders = {p.rsplit("/", 1)[0] for p in self.files if "/" in p}
        return sorted(
            [
                TreeEntry(path=p, name=p.rsplit("/", 1)[-1], type="File", size=len(c))
                for p, c in self.files.items()
            ]
            + [TreeEntry(path=f, name=f.rsplit("/", 1)[-1], type="Folder") for f in folders],
            key=lambda e: e.path,
        )

    def read(self, path: str) -> bytes:
        self.reads.append(path)
        return self.files[path]


class GitLikeTree(MemoryTree):
    """A :class:`MemoryTree` that also knows its blob ids, as a git tree does."""

    def blob_ids(self) -> dict[str, str]:
        return {p: blob_hash(c) for p, c in self.files.items()}
