"""Indexing through the registry's real reader (``LibraryTree`` over a git
repository): blob ids spare unchanged files, changed ones are read in batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.library.tree import LibraryTree
from balsam.domain.search import BatchReader, BlobIds, SearchService, TreeReader
from balsam.providers.git.base import TreeEntry
from tests.domain.search.trees import MemoryTree
from tests.fixtures.library import commit_files, git, make_repo

READER = Actor(user_id=0, username="reader", is_admin=False)


class Counting:
    """Pass everything to a real tree, counting reads."""

    def __init__(self, tree: LibraryTree) -> None:
        self.tree, self.single, self.batched = tree, 0, 0

    def entries(self) -> list[TreeEntry]:
        return self.tree.entries()

    def blob_ids(self) -> dict[str, str]:
        return self.tree.blob_ids()

    def read(self, path: str) -> bytes:
        self.single += 1
        return self.tree.read(path)

    def read_many(self, paths: list[str], *, max_bytes: int) -> dict[str, bytes]:
        self.batched += len(paths)
        return self.tree.read_many(paths, max_bytes=max_bytes)


def test_library_tree_has_every_ability() -> None:
    tree = LibraryTree(Path("/nonexistent"), None)
    assert isinstance(tree, BlobIds) and isinstance(tree, BatchReader)
    reader: TreeReader = tree  # the protocol, checked by mypy
    assert reader.entries() == []


def test_only_changed_files_are_read(
    ctx: AppContext, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    word = unique("gitord").lower()
    repo = make_repo(
        tmp_path / "lib",
        {f"Articles/{i}.md": f"# Artikel {i}\n{word} text {i}\n".encode() for i in range(100)},
    )
    service = SearchService(ctx)
    first = Counting(LibraryTree(repo / ".git", git(repo, "rev-parse", "HEAD")))
    stats = service.index_library(word, "c1", first)
    assert (stats.added, first.batched, first.single) == (100, 100, 0)

    sha = commit_files(repo, {"Articles/7.md": f"# Artikel 7\n{word} ändrad\n".encode()})
    second = Counting(LibraryTree(repo / ".git", sha))
    stats = service.index_library(word, sha, second)

    assert (stats.updated, stats.unchanged, stats.read) == (1, 99, 1)
    assert (second.batched, second.single) == (1, 0)
    hits = SearchService(ctx).search(READER, f"{word} andrad").results
    assert [h.path for h in hits] == ["Articles/7.md"]


def test_a_failing_batch_falls_back_to_single_reads(
    ctx: AppContext, unique: Callable[[str], str]
) -> None:
    word = unique("batch").lower()

    class Flaky(MemoryTree):
        def read_many(self, paths: list[str], *, max_bytes: int) -> dict[str, bytes]:
            raise OSError("git died")

    tree = Flaky({"a.md": f"{word} a", "b.md": f"{word} b"})
    stats = SearchService(ctx).index_library(word, "c1", tree)
    assert stats.read == 2 and sorted(tree.reads) == ["a.md", "b.md"]


def test_a_library_synced_by_the_registry_is_searchable(
    ctx: AppContext, scb_library: dict[str, str]
) -> None:
    hits = SearchService(ctx).search(READER, "Skapa projekt", limit=100).results
    assert any(
        h.library_id == scb_library["id"] and h.path == "Articles/Balsam/Projekt/Skapa projekt.md"
        for h in hits
    )
