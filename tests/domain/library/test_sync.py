"""Syncing libraries with real git: mirrors, outcomes, last good commit, the worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from balsam.context import AppContext
from balsam.db.models import KnowledgeLibrary
from balsam.domain.identity.service import Actor
from balsam.domain.library.schemas import LibraryCreate, LibraryUpdate
from balsam.domain.library.service import LibraryService
from balsam.domain.library.sync import (
    LibraryMirror,
    LibrarySyncer,
    SyncFailed,
    check_repository_url,
)
from balsam.domain.library.tree import LibraryTree
from balsam.domain.library.worker import LibrarySyncWorker
from balsam.errors import InvalidInput, NotFound
from balsam.wiring import derive
from tests.fixtures.library import commit_files, file_url, git, make_repo

ADMIN = Actor(user_id=0, username="test-admin", is_admin=True, request_id="test")


@pytest.fixture
def source(sources_root: Path, unique: Callable[[str], str]) -> Path:
    return make_repo(sources_root / unique("lib-src"), {"README.md": b"# v1\n", "a.txt": b"a"})


@pytest.fixture
def library(ctx: AppContext, source: Path, unique: Callable[[str], str]) -> str:
    created = LibraryService(ctx).create(
        ADMIN,
        LibraryCreate(name=unique("Bibliotek "), repository_url=file_url(source), branch="main"),
    )
    assert created.sync_status == "pending" and created.last_synced_commit is None
    return created.id


def audit_events(ctx: AppContext, library_id: str) -> list[tuple[str, str]]:
    events, _ = ctx.audit.page(limit=500)
    return [(e.action, e.outcome) for e in reversed(events) if e.target == f"library:{library_id}"]


def sync(ctx: AppContext, library_id: str) -> KnowledgeLibrary:
    return LibraryService(ctx).sync(library_id)


def test_sync_mirrors_the_branch(ctx: AppContext, library: str, source: Path) -> None:
    synced = sync(ctx, library)

    assert synced.sync_status == "ok" and synced.sync_error is None
    assert synced.last_synced_commit == git(source, "rev-parse", "HEAD")
    assert synced.last_synced_at is not None
    mirror = ctx.settings.data_dir / "libraries" / f"{library}.git"
    assert (mirror / "HEAD").is_file() and not (mirror / "README.md").exists()
    assert LibraryService(ctx).tree(library).read("README.md") == b"# v1\n"
    assert audit_events(ctx, library) == [
        ("library.create", "success"),
        ("library.sync", "success"),
    ]


def test_failed_sync_keeps_serving_the_last_good_commit(
    ctx: AppContext, library: str, source: Path
) -> None:
    good = sync(ctx, library).last_synced_commit
    moved = source.with_name(source.name + "-moved")
    source.rename(moved)
    try:
        failed = sync(ctx, library)
    finally:
        moved.rename(source)

    assert failed.sync_status == "failed" and failed.sync_error
    assert failed.last_synced_commit == good
    assert LibraryService(ctx).tree(library).read("README.md") == b"# v1\n"
    assert audit_events(ctx, library)[-1] == ("library.sync", "failure")
    assert sync(ctx, library).sync_status == "ok"  # and it recovers


def test_resync_picks_up_a_new_commit(ctx: AppContext, library: str, source: Path) -> None:
    first = sync(ctx, library)
    (source / "a.txt").unlink()
    new = commit_files(source, {"Articles/Ny.md": b"# Ny artikel\n"})

    second = sync(ctx, library)

    assert second.last_synced_commit == new != first.last_synced_commit
    assert second.last_synced_at is not None and first.last_synced_at is not None
    assert second.last_synced_at >= first.last_synced_at
    tree = LibraryService(ctx).tree(library)
    assert tree.is_file("Articles/Ny.md") and not tree.is_file("a.txt")


def test_rewritten_history_is_followed(ctx: AppContext, library: str, source: Path) -> None:
    sync(ctx, library)
    git(source, "commit", "-q", "--amend", "-m", "rewritten")
    assert sync(ctx, library).last_synced_commit == git(source, "rev-parse", "HEAD")


def test_branch_change_and_missing_branch(ctx: AppContext, library: str, source: Path) -> None:
    git(source, "checkout", "-q", "-b", "dev")
    dev = commit_files(source, {"dev.txt": b"dev"})
    service = LibraryService(ctx)

    _, moved = service.update(ADMIN, library, LibraryUpdate(branch="dev"))
    assert moved and sync(ctx, library).last_synced_commit == dev

    service.update(ADMIN, library, LibraryUpdate(branch="nope"))
    failed = sync(ctx, library)
    assert failed.sync_status == "failed" and "nope" in (failed.sync_error or "")
    assert failed.last_synced_commit == dev


def test_url_no_longer_allowed_fails_at_sync(ctx: AppContext, library: str) -> None:
    closed = derive(ctx, settings=ctx.settings.model_copy(update={"source_file_roots": []}))
    failed = LibrarySyncer(closed).sync_now(library)
    assert failed.sync_status == "failed"
    assert "BALSAM_SOURCE_FILE_ROOTS" in (failed.sync_error or "")


def test_fetch_timeout(tmp_path: Path, source: Path) -> None:
    with pytest.raises(SyncFailed, match="timed out"):
        LibraryMirror(tmp_path, timeout=0.000001).fetch("x", file_url(source), "main")


def test_concurrent_syncs_are_serialised(ctx: AppContext, library: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            assert sync(ctx, library).sync_status == "ok"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_unknown_library(ctx: AppContext) -> None:
    with pytest.raises(NotFound):
        sync(ctx, "no-such-library")
    with pytest.raises(NotFound):
        LibraryService(ctx).tree("no-such-library")


def test_delete_removes_mirror(ctx: AppContext, library: str) -> None:
    sync(ctx, library)
    mirror = ctx.settings.data_dir / "libraries" / f"{library}.git"
    assert mirror.is_dir()

    LibraryService(ctx).delete(ADMIN, library)

    assert not mirror.exists()
    with pytest.raises(NotFound):
        LibraryService(ctx).get(library)
    assert audit_events(ctx, library)[-1] == ("library.delete", "success")


def test_search_is_told_about_each_sync_and_delete(
    ctx: AppContext, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from balsam.domain.search.service import SearchService

    calls: list[tuple[str, Any]] = []

    def index(self: object, lid: str, commit: str, tree: LibraryTree) -> None:
        calls.append(("index", (lid, commit, tree.read("README.md"))))

    monkeypatch.setattr(SearchService, "index_library", index)
    monkeypatch.setattr(
        SearchService, "remove_library", lambda self, lid: calls.append(("remove", lid))
    )

    commit = sync(ctx, library).last_synced_commit
    LibraryService(ctx).delete(ADMIN, library)

    (kind, (lid, indexed_commit, readme)), removed = calls
    assert (kind, lid, indexed_commit, readme) == ("index", library, commit, b"# v1\n")
    assert removed == ("remove", library)


def test_indexing_failure_does_not_fail_the_sync(
    ctx: AppContext, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from balsam.domain.search.service import SearchService

    def broken(self: object, *args: object) -> None:
        raise RuntimeError("index down")

    monkeypatch.setattr(SearchService, "index_library", broken)
    assert sync(ctx, library).sync_status == "ok"
    events, _ = ctx.audit.page(limit=20)
    last = next(e for e in events if e.target == f"library:{library}")
    assert last.details["indexed"] is False


def test_worker_syncs_what_it_is_given(ctx: AppContext, library: str) -> None:
    worker = LibrarySyncWorker(ctx, interval=0)
    worker.start()
    try:
        worker.submit(library)
        deadline = time.monotonic() + 30
        while LibraryService(ctx).get(library).sync_status != "ok":
            assert time.monotonic() < deadline, "the worker did not sync"
            time.sleep(0.05)
    finally:
        worker.stop()
    assert not worker.running


def test_worker_knows_what_is_due(ctx: AppContext, library: str) -> None:
    assert library in LibrarySyncWorker(ctx, interval=0)._due(startup=False)
    sync(ctx, library)
    assert library not in LibrarySyncWorker(ctx, interval=0)._due(startup=True)
    assert library not in LibrarySyncWorker(ctx, interval=3600)._due(startup=False)
    time.sleep(1.1)
    assert library in LibrarySyncWorker(ctx, interval=1)._due(startup=False)


@pytest.mark.parametrize(
    "url", ["https://github.com/statisticssweden/x.git", "http://git.example/x", " https://h/x "]
)
def test_good_urls(url: str) -> None:
    assert check_repository_url(url, []) == url.strip()


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@github.com/x.git",
        "git://github.com/x.git",
        "ftp://h/x",
        "git@github.com:x.git",
        "javascript:alert(1)",
        "-uhack",
        "--upload-pack=touch /tmp/x",
        "https://",
        "/tmp/repo",
        "https://user:secret@github.com/x.git",
        "https://token@github.com/x.git",
        "https://h/x\nfoo",
        "ext::sh -c touch% /tmp/pwned",
        "file:///etc",
        "file://host/tmp/x",
        "file://localhost/tmp/x",
        "",
        "https://h/a b",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_repository_url(url, [Path("/tmp")])


def test_file_urls_only_inside_roots(tmp_path: Path) -> None:
    inside = tmp_path / "roots" / "lib"
    assert check_repository_url(file_url(inside), [tmp_path / "roots"])
    for outside in (
        f"file://{tmp_path}/roots/../x",
        f"file://{tmp_path}/roots/%2e%2e/x",
        f"file://{tmp_path}/rootsx",
    ):
        with pytest.raises(InvalidInput):
            check_repository_url(outside, [tmp_path / "roots"])


@pytest.mark.parametrize("library_id", ["..", "../x", "a/b", "A", "", "-x", "x" * 64])
def test_mirror_refuses_what_is_not_a_library_id(tmp_path: Path, library_id: str) -> None:
    mirror = LibraryMirror(tmp_path, timeout=10)
    with pytest.raises(NotFound):
        mirror.path(library_id)
    with pytest.raises(NotFound), mirror.locked(library_id):
        pass
    assert list(tmp_path.iterdir()) == []


def test_without_a_branch_the_repositorys_own_default_is_served(
    ctx: AppContext, sources_root: Path, unique: Callable[[str], str]
) -> None:
    """SCB's repositories are not all on ``main``: a library registered without a
    branch follows the repository's HEAD, whatever its branch is called."""
    source = sources_root / unique("master-lib")
    source.mkdir()
    git(source, "init", "-q", "-b", "master")
    commit_files(source, {"README.md": b"# master\n"}, "initial")
    service = LibraryService(ctx)
    created = service.create(
        ADMIN, LibraryCreate(name=unique("Master "), repository_url=file_url(source))
    )
    assert created.branch == ""  # stored as "the default"
    synced = sync(ctx, created.id)
    head = git(source, "rev-parse", "HEAD").strip()
    assert synced.sync_status == "ok" and synced.last_synced_commit == head
    # A branch named later is served instead; null goes back to the default.
    git(source, "checkout", "-q", "-b", "other")
    commit_files(source, {"b.txt": b"b"}, "on other")
    git(source, "checkout", "-q", "master")
    _, moved = service.update(ADMIN, created.id, LibraryUpdate(branch="other"))
    assert moved and sync(ctx, created.id).last_synced_commit != head
    _, moved = service.update(ADMIN, created.id, LibraryUpdate.model_validate({"branch": None}))
    assert moved and sync(ctx, created.id).last_synced_commit == head
