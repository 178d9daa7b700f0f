"""`balsam up` killed in the middle of an import (``os._exit`` once the first part is in
storage, as ``kill -9`` would): the next start fails the import, aborts its multipart
upload and audits the repair; nothing of the file is left in the bucket."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

import balsam
from balsam.domain.data.import_runs import INTERRUPTED
from balsam.providers.storage.objects import PART_SIZE
from tests.cli.test_cli import up_env, weed_pids  # noqa: F401 - up_env: a fixture
from tests.cli.test_crash_recovery import admin_s3, kill_orphans, post_patiently, start, token
from tests.fixtures.http_source import Answer, http_source

PASSWORD = "Crash-recovery-password-7"


def _api(url: str, bearer: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/api/v1", timeout=60, headers={"Authorization": f"Bearer {bearer}"}
    )


def _died(server: Any, api: httpx.Client, import_path: str) -> None:
    """Wait until the server has died at the crash point (failing with the import's
    state if it never does)."""
    try:
        assert server.process.wait(timeout=60) == 137, server.stderr
    except subprocess.TimeoutExpired:
        pytest.fail(f"balsam up did not die: {api.get(import_path).text}\n{server.stderr}")


def test_an_import_killed_mid_transfer_is_failed_and_cleaned_at_the_next_start(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {
        **up_env,
        "BALSAM_ADMIN_PASSWORD": PASSWORD,
        "BALSAM_SOURCE_PRIVATE_HOSTS": '["localhost"]',
        # The very code under test, also where another checkout is installed.
        "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1]),
    }
    data_dir = tmp_path / "data"
    with http_source() as source:
        source.answers["/big.bin"] = Answer(body=os.urandom(PART_SIZE + 1000))
        server = start(env, data_dir, "import-crash", "data.import:part")
        try:
            api = _api(server.url, token(server))
            project = post_patiently(api, "/projects", {"name": "Import", "branchName": "main"})
            assert project.status_code == 201, project.text
            pid = project.json()["id"]
            asked = api.post(
                f"/projects/{pid}/imports",
                json={"url": source.url("/big.bin", "localhost"), "target": "main/big.bin"},
            )
            assert asked.status_code == 202, asked.text
            _died(server, api, f"/projects/{pid}/imports/{asked.json()['id']}")
        finally:
            server.kill()
            kill_orphans(data_dir)
        assert source.requests == ["/big.bin"]

    s3 = admin_s3(data_dir, env["BALSAM_STORAGE__S3_PORT"])
    server = start(env, data_dir, "after", None)
    try:
        api = _api(server.url, token(server))
        done = api.get(f"/projects/{pid}/imports/{asked.json()['id']}").json()
        assert done["state"] == "failed" and done["error"] == INTERRUPTED, done
        bucket = project.json()["bucket"]
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="main/big").get("Contents", [])
        assert listed == []
        events = api.get(f"/projects/{pid}/audit").json()
        repairs = [
            e
            for e in events["events"]
            if e["action"] == "data.import" and e["outcome"] == "failure"
        ]
        assert repairs and repairs[0]["details"]["interrupted"] is True, events
        assert server.terminate() == 0
    finally:
        server.kill()
        for pid_ in weed_pids(data_dir / "storage"):
            os.kill(pid_, 9)
