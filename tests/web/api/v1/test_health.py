"""Liveness and readiness: public, states only, bounded in time under faults."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from balsam.app import create_app
from balsam.context import AppContext
from balsam.domain.health.service import CheckRunner, HealthService
from balsam.providers.storage.s3iam import S3IamStorage
from balsam.wiring import derive

COMPONENTS = {"database", "storage", "git", "workspaces", "librarySync"}


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
