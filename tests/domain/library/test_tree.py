"""LibraryTree: a commit's files through git objects only; links, submodules and
paths that leave the tree do not exist."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from balsam.domain.library import tree as tree_module
from balsam.domain.library.tree import LibraryTree
from balsam.errors import NotFound, PayloadTooLarge
from tests.fixtures.library import ADVERSARIAL_FILES, BIG_SIZE, git, make_repo


@pytest.fixture(scope="module")
def adv(adversarial_repo: Path) -> LibraryTree:
    return LibraryTree(adversarial_repo / ".git", git(adversarial_repo, "rev-parse", "HEAD"))


def test_entries_hold_files_and_folders_but_no_links_or_submodules(adv: LibraryTree) -> None:
    entries = {e.path: e for e in adv.entries()}

    assert {"link-passwd", "link-up", "docs/link-dir", "vendor/submodule"}.isdisjoint(entries)
    assert set(ADVERSARIAL_FILES) | {"big.bin"} <= set(entries)
    assert entries["docs"].type == "Folder" and entries["docs"].size is None
    assert entries["docs/what?.txt"].name == "what?.txt"
    assert entries["big.bin"].size == BIG_SIZE
    assert [e.path for e in adv.entries()] == sorted(entries)


@pytest.mark.parametrize(
    "path",
    [
        "link-passwd",
        "link-up",
        "link-up/etc/passwd",
        "docs/link-dir",
        "vendor/submodule",
        "../etc/passwd",
        "/etc/passwd",
        "docs/../evil.md",
        "./evil.md",
        "docs//with space.md",
        "docs\\what?.txt",
        "evil.md\x00",
        ".git/config",
        "docs",
        "",
        "nope.md",
        "DOCS/what?.txt",
    ],
)
def test_anything_but_a_file_of_the_tree_is_not_found(adv: LibraryTree, path: str) -> None:
    assert not adv.is_file(path)
    with pytest.raises(NotFound):
        adv.read(path)
    with pytest.raises(NotFound):
        adv.stream(path)


@pytest.mark.parametrize("path", [p for p in ADVERSARIAL_FILES if p.startswith("docs/")])
def test_odd_names_read_back(adv: LibraryTree, path: str) -> None:
    assert adv.read(path) == ADVERSARIAL_FILES[path]


def test_size_limit(adv: LibraryTree) -> None:
    assert adv.size("evil.md") == len(ADVERSARIAL_FILES["evil.md"])
    with pytest.raises(PayloadTooLarge):
        adv.read("big.bin", max_bytes=1024)
    assert adv.read("evil.md", max_bytes=len(ADVERSARIAL_FILES["evil.md"]))


def test_streaming_a_large_file(adv: LibraryTree) -> None:
    total = sum(len(chunk) for chunk in adv.stream("big.bin"))
    assert total == BIG_SIZE

    chunks = adv.stream("big.bin", chunk_size=1024)
    assert len(next(chunks)) == 1024
    chunks.close()  # ends the git process early


def test_listing_is_fast_and_cached_per_commit(adv: LibraryTree) -> None:
    tree_module._load.cache_clear()
    started = time.perf_counter()
    adv.entries()
    assert time.perf_counter() - started < 2.0  # the 50 MB blob is not read
    hits = tree_module._load.cache_info().hits
    LibraryTree(adv.git_dir, adv.commit).entries()
    assert tree_module._load.cache_info().hits == hits + 1


def test_folders(adv: LibraryTree) -> None:
    assert adv.is_folder("docs") and not adv.is_folder("evil.md")
    assert adv.files_under("docs") == sorted(p for p in ADVERSARIAL_FILES if p.startswith("docs/"))
    assert adv.files_under("nope") == [] and adv.files_under("evil.md") == []
    assert "big.bin" in adv.files_under("")
    assert {e.name for e in adv.children("Articles")} == {"Ond", "Utan rubrik.md"}


def test_read_many_and_blob_ids(adv: LibraryTree) -> None:
    wanted = ["evil.md", "docs/Åäö ü 日本.md", "big.bin", "link-passwd", "nope"]
    found = adv.read_many(wanted, max_bytes=1024 * 1024)
    assert found == {p: ADVERSARIAL_FILES[p] for p in wanted[:2]}
    ids = adv.blob_ids()
    assert set(ids) == {e.path for e in adv.entries() if e.type == "File"}
    assert all(len(sha) == 40 for sha in ids.values())


def test_unsynced_library_is_empty(tmp_path: Path) -> None:
    empty = LibraryTree(tmp_path / "missing.git", None)
    assert empty.entries() == [] and empty.files_under("") == []
    with pytest.raises(NotFound):
        empty.read("README.md")


def test_commit_must_be_a_sha(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LibraryTree(tmp_path, "--output=/tmp/x")
    with pytest.raises(ValueError):
        LibraryTree(tmp_path, "HEAD")


def test_missing_mirror_is_not_found(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": b"a"})
    commit = git(repo, "rev-parse", "HEAD")
    with pytest.raises(NotFound):
        LibraryTree(tmp_path / "gone.git", commit).entries()
