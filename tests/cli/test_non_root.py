"""A real ``balsam up`` run by a user that is not root (a fresh uid): its workspaces
would run as its own user and could read its data directory, so it runs them for
one Balsam user only and says so at startup; the admin setting
``workspaces.single_uid_for_all_users`` lifts that, with a warning."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from balsam.hostuids import HostUidRegistry
from tests.cli.test_cli import seaweed_http_ports, weed_pids
from tests.fixtures.server import free_port

#: A Python the unprivileged user can run (root's own interpreter lives under /root).
SYSTEM_PYTHON = Path("/usr/bin/python3")
REPO = Path(__file__).resolve().parents[2]
SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
PASSWORD = "cli-Tests-password-7"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run Balsam as another user"),
    pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system Python for the user"),
]


class UnprivilegedUp:
    """``balsam up`` as ``uid``, with its output in files beside the data directory."""

    def __init__(self, folder: Path, uid: int, extra: dict[str, str], name: str) -> None:
        s3, master, volume, filer, admin, workspaces = seaweed_http_ports(6)
        port = free_port()
        self.url, self.folder = f"http://127.0.0.1:{port}", folder
        env = {
            "HOME": str(folder),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "PYTHONPATH": f"{REPO / 'src'}:{SITE / 'site-packages'}",
            "BALSAM_WORKSPACES__ENVIRONMENTS_DIR": str(folder / "environments"),
            "BALSAM_STORAGE__S3_PORT": str(s3),
            "BALSAM_STORAGE__MASTER_PORT": str(master),
            "BALSAM_STORAGE__VOLUME_PORT": str(volume),
            "BALSAM_STORAGE__FILER_PORT": str(filer),
            "BALSAM_STORAGE__ADMIN_PORT": str(admin),
            "BALSAM_WORKSPACES__PORT": str(workspaces),
            **extra,
        }
        self.err = folder / f"{name}.err"
        with (folder / f"{name}.out").open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    str(SYSTEM_PYTHON),
                    "-c",
                    "from balsam.cli import main; main()",
                    "up",
                    "--data-dir",
                    str(folder / "data"),
                    "--port",
                    str(port),
                ],
                env=env,
                cwd=folder,
                stdout=out,
                stderr=err,
                user=uid,
                group=uid,
                extra_groups=[],
            )

    def wait_until_serving(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.err.read_text()
            try:
                if httpx.get(f"{self.url}/api/v1/openapi.json", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        pytest.fail(f"balsam up did not answer:\n{self.err.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in weed_pids(self.folder / "data" / "storage"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def unprivileged(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A folder of its own for a uid no user, group or process on the host has."""
    uid = HostUidRegistry(tmp_path / "registry", base=1_800_000_000).claim("non-root balsam")
    folder = Path(tempfile.mkdtemp(prefix="balsam-nonroot-"))
    folder.chmod(0o755)
    (folder / "environments").mkdir()
    for path in (folder, folder / "environments"):
        os.chown(path, uid, uid)
    yield folder, uid
    shutil.rmtree(folder, ignore_errors=True)


def _admin(server: UnprivilegedUp) -> httpx.Client:
    out = (server.folder / "first.out").read_text()
    match = re.search(r"admin password: (\S+)", out)
    assert match, out
    token = httpx.post(
        f"{server.url}/api/v1/users/me/tokens",
        auth=("admin", match.group(1)),
        json={"name": "t"},
        timeout=30,
    ).json()["token"]
    return _client(server, token)


def _client(server: UnprivilegedUp, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1", timeout=60, headers={"Authorization": f"Bearer {token}"}
    )


def _user(server: UnprivilegedUp, admin: httpx.Client, name: str) -> httpx.Client:
    assert admin.post("/users", json={"username": name, "password": PASSWORD}).status_code == 201
    token = httpx.post(
        f"{server.url}/api/v1/users/me/tokens",
        auth=(name, PASSWORD),
        json={"name": "t"},
        timeout=30,
    ).json()["token"]
    return _client(server, token)


def _create_workspace(user: httpx.Client, name: str) -> httpx.Response:
    project = user.post("/projects", json={"name": name, "branchName": "main"})
    assert project.status_code == 201, project.text
    return user.post(
        "/workspaces",
        json={
            "name": "W",
            "templateId": "python",
            "projectId": project.json()["id"],
            "branchId": "main",
        },
    )


def test_a_non_root_balsam_runs_workspaces_for_one_user(unprivileged: tuple[Path, int]) -> None:
    folder, uid = unprivileged
    server = UnprivilegedUp(folder, uid, {}, "first")
    try:
        server.wait_until_serving()
        assert (folder / "data").stat().st_uid == uid  # really not root
        admin = _admin(server)
        ada, bo = _user(server, admin, "ada"), _user(server, admin, "bo")
        first = _create_workspace(ada, "Adas")
        assert first.status_code == 201, first.text
        assert first.json()["isolation"] == "none"
        refused = _create_workspace(bo, "Bos")
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["reason"] == "workspaces-not-isolated"
        assert "one Balsam user only" in server.err.read_text()
    finally:
        server.stop()

    again = UnprivilegedUp(
        folder, uid, {"BALSAM_WORKSPACES__SINGLE_UID_FOR_ALL_USERS": "true"}, "second"
    )
    try:
        again.wait_until_serving()
        assert "UNSAFE" in again.err.read_text()
        bo = _client(
            again,
            httpx.post(
                f"{again.url}/api/v1/users/me/tokens",
                auth=("bo", PASSWORD),
                json={"name": "t"},
                timeout=30,
            ).json()["token"],
        )
        accepted = _create_workspace(bo, "Bos igen")
        assert accepted.status_code == 201, accepted.text
    finally:
        again.stop()
