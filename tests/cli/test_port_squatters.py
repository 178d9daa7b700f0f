"""A workspace that takes Balsam's or SeaweedFS's port while they are down loses it:
``balsam up`` stops it before it listens, and so does weed's supervisor before a
restart. The squatter is a real process under a uid the host-wide registry holds
for a workspace of this installation (what code in a workspace runs as)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from balsam.hostuids import HostUidRegistry
from tests.cli.test_cli import BalsamUp, up_env, weed_pids  # noqa: F401 - up_env: a fixture
from tests.fixtures.server import free_port
from tests.test_ports import squatter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="workspace uids need root")


@pytest.fixture
def env_and_uid(up_env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], int]:  # noqa: F811
    """``balsam up``'s environment with a registry of its own, and the uid of one
    of its workspaces."""
    registry = tmp_path / "registry"
    base = int(up_env["BALSAM_WORKSPACES__UID_BASE"])
    uid = HostUidRegistry(registry, base=base).claim(f"{tmp_path / 'data'}#workspace:evil-1")
    env = {**up_env, "BALSAM_UID_REGISTRY_DIR": str(registry),
           "BALSAM_DATABASE_URL": f"sqlite:///{tmp_path / 'balsam.db'}"}  # fmt: skip
    return env, uid


@pytest.fixture
def stopped_afterwards() -> Iterator[list[BalsamUp]]:
    started: list[BalsamUp] = []
    yield started
    for server in started:
        server.kill()


def test_balsam_up_takes_its_port_back(
    env_and_uid: tuple[dict[str, str], int], tmp_path: Path, stopped_afterwards: list[BalsamUp]
) -> None:
    env, uid = env_and_uid
    port = free_port()
    with squatter(port, uid) as process:  # as after a `kill -9` of balsam up
        assert httpx.get(f"http://127.0.0.1:{port}/login").text == "not Balsam"
        server = BalsamUp(env, tmp_path / "data", port, "up")
        stopped_afterwards.append(server)
        assert process.wait(timeout=60) == -signal.SIGKILL
    server.wait_until_serving()
    assert f"was listening on port(s) [{port}] of Balsam" in server.stderr
    assert 'name="password"' in httpx.get(f"http://127.0.0.1:{port}/login").text
    # Browsers try localhost at ::1 first: Balsam holds that port too.
    assert 'name="password"' in httpx.get(f"http://[::1]:{port}/login").text


def test_a_restarted_weed_takes_its_port_back(
    env_and_uid: tuple[dict[str, str], int], tmp_path: Path, stopped_afterwards: list[BalsamUp]
) -> None:
    env, uid = env_and_uid
    server = BalsamUp(env, tmp_path / "data", free_port(), "up")
    stopped_afterwards.append(server)
    server.wait_until_serving()
    s3_port = int(env["BALSAM_STORAGE__S3_PORT"])
    # The squatter waits for weed's port and takes it the moment weed dies.
    with squatter(s3_port, uid, wait=False) as process:
        (weed,) = weed_pids(tmp_path / "data" / "storage")
        os.kill(weed, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL  # killed before the restart
    deadline = time.monotonic() + 30
    while "SeaweedFS restarted" not in server.stderr:
        assert time.monotonic() < deadline, server.stderr
        time.sleep(0.1)
    assert f"was listening on port(s) [{s3_port}] of SeaweedFS" in server.stderr
    ready = httpx.get(f"{server.url}/api/v1/health/ready", timeout=10).json()
    assert ready["components"]["storage"] == "ok"
