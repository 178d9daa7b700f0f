"""Two ``balsam up`` on one host (their own data directories, ports and databases,
the same uid base, as an unconfigured second installation would have) hand their
workspaces disjoint uids: both claim them in the host-wide registry."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from balsam.hostuids import HostUidRegistry
from tests.cli.test_cli import BalsamUp, seaweed_http_ports, weed_pids
from tests.fixtures.app import ENVIRONMENTS
from tests.fixtures.server import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="workspace uids exist only as root")

#: The same for both, as two installations left at the default would share it.
UID_BASE = 1_700_000_000


def _env(registry: Path, ports: list[int]) -> dict[str, str]:
    s3, master, volume, filer, admin = ports
    env = {key: value for key, value in os.environ.items() if not key.startswith("BALSAM_")}
    return {
        **env,
        "BALSAM_WORKSPACES__ENVIRONMENTS_DIR": str(ENVIRONMENTS),
        "BALSAM_WORKSPACES__UID_BASE": str(UID_BASE),
        "BALSAM_UID_REGISTRY_DIR": str(registry),
        "BALSAM_STORAGE__S3_PORT": str(s3),
        "BALSAM_STORAGE__MASTER_PORT": str(master),
        "BALSAM_STORAGE__VOLUME_PORT": str(volume),
        "BALSAM_STORAGE__FILER_PORT": str(filer),
        "BALSAM_STORAGE__ADMIN_PORT": str(admin),
    }


@pytest.fixture
def installations(tmp_path: Path) -> Iterator[list[tuple[BalsamUp, Path]]]:
    ports = seaweed_http_ports(10)
    started: list[tuple[BalsamUp, Path]] = []
    try:
        for n, name in enumerate(("one", "two")):
            data_dir = tmp_path / name / "data"
            data_dir.parent.mkdir()
            env = _env(tmp_path / "registry", ports[5 * n : 5 * n + 5])
            started.append((BalsamUp(env, data_dir, free_port(), name), data_dir))
        for server, _ in started:
            server.wait_until_serving()
        yield started
    finally:
        for server, data_dir in started:
            if server.process.poll() is None:
                server.terminate()  # stops its workspaces
            for pid in weed_pids(data_dir / "storage"):
                os.kill(pid, signal.SIGKILL)


def _api(server: BalsamUp) -> httpx.Client:
    match = re.search(r"admin password: (\S+)", server.stdout)
    assert match, server.stdout
    token = httpx.post(
        f"{server.url}/api/v1/users/me/tokens",
        auth=("admin", match.group(1)),
        json={"name": "uids"},
        timeout=30,
    ).json()["token"]
    return httpx.Client(
        base_url=f"{server.url}/api/v1", timeout=60, headers={"Authorization": f"Bearer {token}"}
    )


def _create_workspace(api: httpx.Client) -> str:
    project = api.post("/projects", json={"name": "Uid", "branchName": "main"})
    assert project.status_code == 201, project.text
    workspace = api.post(
        "/workspaces",
        json={
            "name": "Egen",
            "templateId": "python",
            "projectId": project.json()["id"],
            "branchId": "main",
        },
    )
    assert workspace.status_code == 201, workspace.text
    return str(workspace.json()["id"])


def _wait_running(api: httpx.Client, workspace_id: str) -> None:
    deadline = time.monotonic() + 600
    while (state := api.get(f"/workspaces/{workspace_id}").json())["state"] != "running":
        assert state["state"] != "failed" and time.monotonic() < deadline, state["stateReason"]
        time.sleep(0.25)


def _server_uid(workspace_id: str) -> int:
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f"/workspaces/{workspace_id}/" in cmdline:
            return entry.stat().st_uid
    pytest.fail(f"no server runs for {workspace_id}")


def test_two_installations_give_disjoint_uids(
    installations: list[tuple[BalsamUp, Path]], tmp_path: Path
) -> None:
    apis = [_api(server) for server, _ in installations]
    ids = [_create_workspace(api) for api in apis]
    for api, workspace_id in zip(apis, ids, strict=True):
        _wait_running(api, workspace_id)
    uids = [
        int((data_dir / "workspaces" / workspace_id / "uid").read_text())
        for (_, data_dir), workspace_id in zip(installations, ids, strict=True)
    ]
    assert uids[0] != uids[1]
    assert [_server_uid(workspace_id) for workspace_id in ids] == uids
    registry = HostUidRegistry(tmp_path / "registry", base=UID_BASE)
    for (_, data_dir), workspace_id, uid in zip(installations, ids, uids, strict=True):
        assert registry.owner_of(uid) == f"{data_dir}#workspace:{workspace_id}"
