"""Upgrade in place: a data directory made by the release before the filer IAM
gRPC keys (commit d63fb52: keys through the IAM API on the S3 port, weed without
mutual TLS) starts under this release with no manual step, every key it minted
still working on its bucket only, every key it revoked still refused, and new
keys minted and revoked through the new path.

The old release runs from ``git archive`` of that commit with this venv's
Python (``PYTHONPATH`` first); both run as real ``balsam up`` processes on the
same data dir, database and ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.cli.test_cli import balsam_command, seaweed_http_ports, weed_pids
from tests.fixtures.app import ENVIRONMENTS
from tests.fixtures.server import free_port

OLD_RELEASE = "d63fb52"
REPOSITORY = Path(__file__).resolve().parents[3]
PASSWORD = "Upgrade-in-place-7"


def old_release_src(into: Path) -> Path:
    """The old release's ``src`` folder, or skip when this clone lacks the commit."""
    archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", OLD_RELEASE, "src"],
                             capture_output=True, timeout=60, check=False)  # fmt: skip
    if archive.returncode != 0:
        pytest.skip(
            f"commit {OLD_RELEASE} (the release before filer IAM gRPC keys) is not in "
            f"this clone (shallow?): {archive.stderr.decode(errors='replace')[:200]}"
        )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


class Up:
    """``balsam up`` as a child process (``pythonpath`` first, for the old release)."""

    def __init__(self, env: dict[str, str], data_dir: Path, name: str,
                 pythonpath: Path | None = None) -> None:  # fmt: skip
        self.url = f"http://127.0.0.1:{free_port()}"
        command = balsam_command()
        if pythonpath is not None:
            env = {**env, "PYTHONPATH": str(pythonpath)}
            command = [sys.executable, "-c", "from balsam.cli import main; main()"]
        self.log = data_dir.parent / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "up", "--data-dir", str(data_dir), "--port", self.url.rsplit(":")[-1]],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir.parent)  # fmt: skip
        # The old release has no readiness endpoint; this one's waits for storage.
        self._wait_until_serving("openapi.json" if pythonpath else "health/ready")
        token = httpx.post(f"{self.url}/api/v1/users/me/tokens", auth=("admin", PASSWORD),
                           json={"name": name}, timeout=30)  # fmt: skip
        assert token.status_code == 201, token.text
        self.headers = {"Authorization": f"Bearer {token.json()['token']}"}

    def _wait_until_serving(self, path: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-4000:]
            try:
                if httpx.get(f"{self.url}/api/v1/{path}", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        pytest.fail(f"balsam up did not answer:\n{self.log.read_text()[-4000:]}")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = httpx.post(f"{self.url}/api/v1{path}", json=body, headers=self.headers, timeout=60)
        assert reply.status_code == 201, reply.text
        result: dict[str, Any] = reply.json()
        return result

    def revoke(self, project_id: str, access_key: str) -> None:
        reply = httpx.delete(f"{self.url}/api/v1/projects/{project_id}/credentials/{access_key}",
                             headers=self.headers, timeout=60)  # fmt: skip
        assert reply.status_code == 204, reply.text

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Key:
    project_id: str
    bucket: str
    access_key: str
    secret_key: str

    @classmethod
    def of(cls, project_id: str, credential: dict[str, Any]) -> Key:
        return cls(project_id, credential["bucket"], credential["accessKey"],
                   credential["secretKey"])  # fmt: skip

    def s3(self, endpoint: str) -> Any:
        # Retries as S3 clients do (standard mode: 5xx and throttling, never a
        # 403): a weed just restarted may answer a read with InternalError
        # "please try again" while its volume server registers its volumes.
        config = Config(s3={"addressing_style": "path"},
                        retries={"mode": "standard", "total_max_attempts": 4},
                        connect_timeout=2, read_timeout=20)  # fmt: skip
        return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, config=config)  # fmt: skip


def assert_refused(call: Any, **kwargs: Any) -> None:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] in {"AccessDenied", "InvalidAccessKeyId"}


@pytest.fixture
def env(fresh_database_url: str) -> dict[str, str]:
    s3, master, volume, filer, workspaces = seaweed_http_ports(5)
    base = {key: value for key, value in os.environ.items() if not key.startswith("BALSAM_")}
    return {
        **base,
        "BALSAM_DATABASE_URL": fresh_database_url,
        "BALSAM_ADMIN_PASSWORD": PASSWORD,
        "BALSAM_WORKSPACES__ENVIRONMENTS_DIR": str(ENVIRONMENTS),
        "BALSAM_STORAGE__S3_PORT": str(s3),
        "BALSAM_STORAGE__MASTER_PORT": str(master),
        "BALSAM_STORAGE__VOLUME_PORT": str(volume),
        "BALSAM_STORAGE__FILER_PORT": str(filer),
        "BALSAM_WORKSPACES__PORT": str(workspaces),
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    for pid in weed_pids(path / "storage"):
        os.kill(pid, signal.SIGKILL)


def make_keys_with_the_old_release(old: Up, endpoint: str) -> tuple[list[Key], list[Key]]:
    """Two projects, keys minted and one revoked through the old release's API;
    an object written with each kept key. Returns (kept, revoked)."""
    kept, revoked = [], []
    for name in ("Upgrade A", "Upgrade B"):
        project = old.post("/projects", {"name": name, "branchName": "main"})
        pid = project["id"]
        first = Key.of(pid, project["credentials"])
        more = [Key.of(pid, old.post(f"/projects/{pid}/credentials", {"name": f"k{i}"}))
                for i in range(2)]  # fmt: skip
        old.revoke(pid, more[0].access_key)
        kept += [first, more[1]]
        revoked.append(more[0])
    for key in kept:
        key.s3(endpoint).put_object(Bucket=key.bucket, Key=f"{key.access_key}.txt", Body=b"kept")
    return kept, revoked


def test_a_data_dir_of_the_previous_release_upgrades_in_place(
    env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    old_src = old_release_src(tmp_path / "old")
    endpoint = f"http://127.0.0.1:{env['BALSAM_STORAGE__S3_PORT']}"
    old = Up(env, data_dir, "old", pythonpath=old_src)
    try:
        kept, revoked = make_keys_with_the_old_release(old, endpoint)
    finally:
        old.stop()
    assert weed_pids(data_dir / "storage") == []
    # The old release ran: weed without this release's PKI (no CA, no kept JWT keys).
    assert not (data_dir / "storage" / "conf" / "jwt.json").exists()

    new = Up(env, data_dir, "new")
    try:
        for key in kept:
            s3 = key.s3(endpoint)
            assert s3.get_object(Bucket=key.bucket, Key=f"{key.access_key}.txt")["Body"].read()
            s3.put_object(Bucket=key.bucket, Key="after-upgrade.txt", Body=b"new")
            other = next(k.bucket for k in kept if k.bucket != key.bucket)
            assert_refused(s3.list_objects_v2, Bucket=other)
        for key in revoked:
            assert_refused(key.s3(endpoint).list_objects_v2, Bucket=key.bucket)

        project_id, bucket = kept[0].project_id, kept[0].bucket
        fresh = Key.of(project_id, new.post(f"/projects/{project_id}/credentials", {"name": "n"}))
        assert fresh.bucket == bucket
        fresh.s3(endpoint).list_objects_v2(Bucket=bucket)
        for key in (fresh, kept[0]):  # a new key and one the old release minted
            new.revoke(project_id, key.access_key)
            assert_refused(key.s3(endpoint).list_objects_v2, Bucket=bucket)
        kept[1].s3(endpoint).list_objects_v2(Bucket=bucket)
        assert (data_dir / "storage" / "conf" / "ca.crt").exists()  # the new release ran
    finally:
        new.stop()
