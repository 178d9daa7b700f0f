"""Liveness and readiness: public, states only, bounded in time under faults."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from balsam.app import create_app
from balsam.context import AppContext
from balsam.domain.health.service import CheckRunner, HealthService
from balsam.errors import ProviderError
from balsam.providers.git.base import Author
from balsam.providers.git.local import LocalGitProvider
from balsam.providers.storage.s3iam import S3IamStorage
from balsam.wiring import derive

AUTHOR = Author("T", "t@example.org")
COMPONENTS = {"database", "storage", "git", "disk", "workspaces", "librarySync"}


def test_liveness_needs_no_login(anon: httpx.Client) -> None:
    r = anon.get("/api/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_a_running_instance_is_ready(live_url: str) -> None:
    r = httpx.get(f"{live_url}/api/v1/health/ready", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "components": dict.fromkeys(COMPONENTS, "ok")}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a paused server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _with_storage(ctx: AppContext, endpoint: str) -> AppContext:
    storage = S3IamStorage(endpoint, "us-east-1", "AK", "SK", read_timeout=60)
    return derive(ctx, providers=dataclasses.replace(ctx.providers, storage=storage))


def test_a_paused_storage_server_is_a_timeout_within_the_bound(
    ctx: AppContext, silent_server: int
) -> None:
    runner = CheckRunner()
    service = HealthService(_with_storage(ctx, f"http://127.0.0.1:{silent_server}"))
    started = time.monotonic()
    states = service.readiness(runner, library_sync_running=True, timeout=1.0).components
    assert time.monotonic() - started < 3
    assert states["storage"] == "timeout" and states["database"] == "ok"
    # The hung check is not started again: still a timeout, still bounded.
    started = time.monotonic()
    assert (
        service.readiness(runner, library_sync_running=True, timeout=0.5).components["storage"]
        == "timeout"
    )
    assert time.monotonic() - started < 2


def test_the_endpoint_answers_503_with_retry_after_within_the_bound(
    ctx: AppContext, silent_server: int
) -> None:
    """An app whose storage hangs, served without its background work (no lifespan)."""
    app = create_app(ctx=_with_storage(ctx, f"http://127.0.0.1:{silent_server}"))
    started = time.monotonic()
    r = TestClient(app).get("/api/v1/health/ready")
    assert time.monotonic() - started < 6
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json() == {
        "status": "unready",
        "components": {
            "database": "ok",
            "storage": "timeout",
            "git": "ok",
            "disk": "ok",
            "workspaces": "stopped",
            "librarySync": "stopped",
        },
    }


def test_a_storage_server_that_refuses_is_failing(ctx: AppContext) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    service = HealthService(_with_storage(ctx, f"http://127.0.0.1:{closed}"))
    readiness = service.readiness(CheckRunner(), library_sync_running=True, timeout=10)
    assert readiness.components["storage"] == "failing" and not readiness.ready


def test_a_lost_repositories_folder_is_failing_and_creates_nothing(
    ctx: AppContext, tmp_path: Path
) -> None:
    """A review moved the folder away: health still said ok, and the next project
    creation quietly made an empty one."""
    root = tmp_path / "git"
    git = LocalGitProvider(root)
    lost = derive(ctx, providers=dataclasses.replace(ctx.providers, git=git))
    service = HealthService(lost)
    assert service.readiness(CheckRunner(), library_sync_running=True).components["git"] == "ok"
    root.rename(tmp_path / "git.moved")
    readiness = service.readiness(CheckRunner(), library_sync_running=True, timeout=10)
    assert readiness.components["git"] == "failing" and not readiness.ready
    with pytest.raises(ProviderError):
        git.create_repository("p", default_branch="main", files={}, message="m", author=AUTHOR)
    assert not root.exists()


def test_a_full_disk_is_failing(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """A review filled the data directory's file system from a workspace: creations
    and pushes failed while health said every part was ok."""
    service = HealthService(ctx)
    assert service.readiness(CheckRunner(), library_sync_running=True).components["disk"] == "ok"
    free = os.statvfs(ctx.settings.data_dir)
    monkeypatch.setattr(
        ctx.settings, "min_free_disk_mib", free.f_bavail * free.f_frsize // 2**20 + 1024
    )
    readiness = service.readiness(CheckRunner(), library_sync_running=True, timeout=10)
    assert readiness.components["disk"] == "failing" and not readiness.ready
