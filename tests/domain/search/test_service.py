"""SearchService against the real database: incremental indexing, removal,
rebuilding the in-memory index from the database, and concurrency."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import SearchDocument
from balsam.domain.identity.service import Actor
from balsam.domain.search import SearchService
from balsam.errors import InvalidInput
from tests.domain.search.trees import GitLikeTree, MemoryTree

READER = Actor(user_id=0, username="reader", is_admin=False)


def library_files(word: str) -> dict[str, str]:
    """A small library; every document holds ``word`` so searches stay in this test."""
    return {
        "README.md": f"# Bibliotek {word}\n",
        f"Articles/Om {word}.md": f"# Om {word}\nHämta data med {word}.\n",
        "Resources/Kodning/README.md": f"# Kodning\n{word} kodning\n",
        "Resources/Kodning/etl.py": f"import {word}\n",
        "Resources/Kodning/data.csv": "a,b\n1,2\n",
        "Templates/mall.json": json.dumps(
            {"name": f"Mall {word}", "description": "d", "tags": [word]}
        ),
    }


@pytest.fixture
def word(unique: Callable[[str], str]) -> str:
    return unique("ord").lower()


def paths(ctx: AppContext, q: str) -> list[str]:
    return sorted(h.path for h in SearchService(ctx).search(READER, q, limit=100).results)


def stored(ctx: AppContext, library: str) -> dict[str, str]:
    with ctx.sessions() as session:
        rows = session.execute(
            select(SearchDocument.path, SearchDocument.content_hash).where(
                SearchDocument.library_id == library
            )
        )
        return {path: digest for path, digest in rows}


def test_first_index_reads_and_stores_everything(ctx: AppContext, word: str) -> None:
    tree = MemoryTree(library_files(word))
    stats = SearchService(ctx).index_library(word, "c1", tree)
    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (6, 0, 0, 0)
    assert stats.documents == 6 and stats.commit == "c1"
    assert set(tree.reads) == set(library_files(word)) - {"Resources/Kodning/data.csv"}
    assert set(stored(ctx, word)) == set(library_files(word))
    assert "Resources/Kodning/data.csv" in paths(ctx, "data csv")
    assert len(paths(ctx, word)) == 5  # every document but the csv (found by name only)


def test_changing_one_file_reprocesses_only_it(ctx: AppContext, word: str) -> None:
    service = SearchService(ctx)
    service.index_library(word, "c1", MemoryTree(library_files(word)))
    before = stored(ctx, word)
    files = library_files(word) | {f"Articles/Om {word}.md": f"# Om {word}\nNytt innehåll.\n"}

    stats = service.index_library(word, "c2", MemoryTree(files))

    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (0, 1, 0, 5)
    after = stored(ctx, word)
    assert {p for p in after if after[p] != before[p]} == {f"Articles/Om {word}.md"}
    assert paths(ctx, f"{word} nytt") == [f"Articles/Om {word}.md"]
    assert f"Articles/Om {word}.md" not in paths(ctx, f"{word} hamta")


def test_a_tree_with_blob_ids_reads_only_changed_files(ctx: AppContext, word: str) -> None:
    service = SearchService(ctx)
    service.index_library(word, "c1", GitLikeTree(library_files(word)))
    files = library_files(word) | {"Resources/Kodning/etl.py": f"import {word}, pandas\n"}
    tree = GitLikeTree(files)

    stats = service.index_library(word, "c2", tree)

    assert tree.reads == ["Resources/Kodning/etl.py"]
    assert (stats.updated, stats.unchanged, stats.read) == (1, 5, 1)
    assert paths(ctx, f"{word} pandas") == ["Resources/Kodning/etl.py"]


def test_removed_and_added_paths(ctx: AppContext, word: str) -> None:
    service = SearchService(ctx)
    service.index_library(word, "c1", MemoryTree(library_files(word)))
    files = library_files(word)
    del files["Resources/Kodning/etl.py"]
    files[f"Articles/Ny {word}.md"] = f"# Ny\n{word}\n"

    stats = service.index_library(word, "c2", MemoryTree(files))

    assert (stats.added, stats.removed, stats.documents) == (1, 1, 6)
    assert "Resources/Kodning/etl.py" not in stored(ctx, word)
    assert "Resources/Kodning/etl.py" not in paths(ctx, word)
    assert f"Articles/Ny {word}.md" in paths(ctx, word)


def test_remove_library_drops_every_document(ctx: AppContext, word: str) -> None:
    service = SearchService(ctx)
    service.index_library(word, "c1", MemoryTree(library_files(word)))
    assert paths(ctx, word)

    service.remove_library(word)
    service.remove_library(word)  # idempotent

    assert stored(ctx, word) == {} and paths(ctx, word) == []


def test_hidden_paths_and_folders_are_skipped(ctx: AppContext, word: str) -> None:
    tree = MemoryTree(
        {
            f"{word}.md": "x",
            f".github/{word}.md": "x",
            f"Resources/.ipynb_checkpoints/{word}.ipynb": "{}",
        }
    )
    SearchService(ctx).index_library(word, "c1", tree)
    assert set(stored(ctx, word)) == {f"{word}.md"}


def test_a_new_context_rebuilds_the_index_from_the_database(ctx: AppContext, word: str) -> None:
    SearchService(ctx).index_library(word, "c1", MemoryTree(library_files(word)))
    replica = dataclasses.replace(ctx)  # same database, no in-memory index yet
    assert getattr(replica, "_search", None) is None

    found = SearchService(replica).search(READER, f"hamta {word}")

    assert [h.path for h in found.results] == [f"Articles/Om {word}.md"]
    assert "<mark>Hämta</mark>" in found.results[0].snippet


def test_an_unloaded_index_picks_up_updates_on_load(ctx: AppContext, word: str) -> None:
    replica = dataclasses.replace(ctx)
    SearchService(replica).index_library(word, "c1", MemoryTree(library_files(word)))
    assert paths(replica, f"{word} kodning") == [
        "Resources/Kodning/README.md",
        "Resources/Kodning/etl.py",
    ]


@pytest.mark.parametrize("q", ["", "   ", "!?-", "\t\n"])
def test_queries_without_words_are_invalid(ctx: AppContext, q: str) -> None:
    with pytest.raises(InvalidInput):
        SearchService(ctx).search(READER, q)


def test_searches_run_while_a_library_is_indexed(ctx: AppContext, word: str) -> None:
    service = SearchService(ctx)
    service.index_library(word, "c1", MemoryTree(library_files(word)))
    errors: list[BaseException] = []
    done = threading.Event()

    def search_loop() -> None:
        try:
            while not done.is_set():
                assert len(paths(ctx, word)) >= 5
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(10):
        files = library_files(word) | {f"Articles/Extra {i}.md": f"{word} {i}"}
        service.index_library(word, f"c{i}", MemoryTree(files))
    done.set()
    for t in threads:
        t.join()
    assert errors == []
    assert paths(ctx, f"{word} 9") == ["Articles/Extra 9.md"]
