"""`balsam up` killed in the middle of project creations and key mints (``os._exit`` at a chosen
step, as ``kill -9`` would): the next start completes or undoes each interrupted
operation, audits the attempt and the repair, and leaves no orphan behind."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

import balsam
from balsam.db.models import AuditEvent, PendingOperation
from balsam.embedded.seaweedfs import GRPC_PORT_OFFSET
from balsam.providers.storage.seaweed_iam import SeaweedIamStorage
from tests.cli.test_cli import BalsamUp, up_env, weed_pids  # noqa: F401 - up_env: a fixture
from tests.fixtures.server import free_port

PASSWORD = "Crash-recovery-password-7"
NAME = "Burst k9"
CLEAN_ID = "burst-k9"


def start(env: dict[str, str], data_dir: Path, name: str, crash_at: str | None) -> BalsamUp:
    extra = {"BALSAM_TEST_CRASH_AT": crash_at} if crash_at else {}
    server = BalsamUp({**env, **extra}, data_dir, free_port(), name)
    server.wait_until_serving()
    return server


def token(server: BalsamUp) -> str:
    r = httpx.post(
        f"{server.url}/api/v1/users/me/tokens",
        auth=("admin", PASSWORD),
        json={"name": "crash"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def post_patiently(api: httpx.Client, path: str, body: dict[str, str]) -> httpx.Response:
    """POST as the API asks of clients: a 503 means "try again after Retry-After" (a
    weed still loading its identities after a restart, or loaded by the test run)."""
    for _ in range(4):
        r = api.post(path, json=body)
        if r.status_code != 503:
            return r
        time.sleep(float(r.headers.get("retry-after", "5")))
    return r


def kill_orphans(data_dir: Path) -> None:
    """The embedded weed outlives a killed `balsam up`; stop it so the next can start."""
    for pid in weed_pids(data_dir / "storage"):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while weed_pids(data_dir / "storage") and time.monotonic() < deadline:
        time.sleep(0.1)


def admin_s3(data_dir: Path, s3_port: str) -> Any:
    """A boto3 client of the embedded storage of the `balsam up` in ``data_dir``, with
    its admin key."""
    admin = json.loads((data_dir / "storage" / "admin.json").read_text())
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{s3_port}",
        region_name="us-east-1",
        aws_access_key_id=admin["access_key"],
        aws_secret_access_key=admin["secret_key"],
        config=Config(s3={"addressing_style": "path"}),
    )


def buckets(data_dir: Path, s3_port: str) -> set[str]:
    s3 = admin_s3(data_dir, s3_port)
    return {b["Name"] for b in s3.list_buckets().get("Buckets", [])}


@pytest.mark.parametrize("steps", [["repository", "bucket", "key", "insert"]])
def test_a_creation_killed_at_any_step_is_repaired_at_the_next_start(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    steps: list[str],
) -> None:
    database = tmp_path / "balsam.db"
    env = {
        **up_env,
        "BALSAM_ADMIN_PASSWORD": PASSWORD,
        "BALSAM_DATABASE_URL": f"sqlite:///{database}",
        # The very code under test, also where another checkout is installed.
        "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1]),
    }
    data_dir = tmp_path / "data"
    for number, step in enumerate(steps):
        server = start(env, data_dir, f"crash-{number}", f"project.create:{step}")
        headers = {"Authorization": f"Bearer {token(server)}"}
        for _ in range(3):  # a loaded weed may answer 503 ("try again shortly") first
            try:
                r = httpx.post(f"{server.url}/api/v1/projects", timeout=60, headers=headers,
                               json={"name": NAME, "branchName": "main"})  # fmt: skip
            except httpx.TransportError:
                break  # the process died at the crash point
            assert r.status_code == 503, r.text
            time.sleep(float(r.headers.get("retry-after", "5")))
        else:
            pytest.fail(f"balsam up did not die at {step}")
        assert server.process.wait(timeout=30) == 137
        kill_orphans(data_dir)

    server = start(env, data_dir, "after", None)
    try:
        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            timeout=60,
            headers={"Authorization": f"Bearer {token(server)}"},
        )
        # The one creation that got as far as its database row was completed; every
        # other was undone, so it took the clean id each time.
        projects = api.get("/projects").json()["projects"]
        assert [p["id"] for p in projects] == [CLEAN_ID]
        repositories = sorted(p.name for p in (data_dir / "git").glob("*.git"))
        assert repositories == [f"{CLEAN_ID}.git"]
        assert buckets(data_dir, env["BALSAM_STORAGE__S3_PORT"]) == {CLEAN_ID}
        assert api.get(f"/projects/{CLEAN_ID}/branches").status_code == 200

        engine = create_engine(f"sqlite:///{database}")
        with Session(engine) as session:
            assert session.scalars(select(PendingOperation)).all() == []
            repairs = session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "project.create", AuditEvent.outcome == "failure"
                )
            ).all()
        engine.dispose()
        assert sorted(r.details["repair"] for r in repairs) == sorted(
            "completed" if step == "insert" else "undone" for step in steps
        )
        assert all(
            r.details["interrupted"] and r.actor == "admin" and r.details["startedAt"]
            for r in repairs
        )

        again = post_patiently(api, "/projects", {"name": "Burst k10", "branchName": "main"})
        assert again.status_code == 201 and again.json()["id"] == "burst-k10", again.text
        assert server.terminate() == 0
    finally:
        server.kill()
        kill_orphans(data_dir)


def test_a_burst_of_creations_killed_midway_leaves_no_orphan(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    """20 concurrent creations; the first to mint its key kills the process (the
    others are at every other step). After a restart: nothing half-made."""
    database = tmp_path / "balsam.db"
    env = {
        **up_env,
        "BALSAM_ADMIN_PASSWORD": PASSWORD,
        "BALSAM_DATABASE_URL": f"sqlite:///{database}",
        "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1]),
    }
    data_dir = tmp_path / "data"
    server = start(env, data_dir, "burst", "project.create:key")
    headers = {"Authorization": f"Bearer {token(server)}"}

    def create(number: int) -> int | None:
        try:
            return httpx.post(
                f"{server.url}/api/v1/projects",
                headers=headers,
                timeout=120,
                json={"name": f"burst k9 {number}", "branchName": "main"},
            ).status_code
        except httpx.TransportError:
            return None

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(create, range(20)))
    assert server.process.wait(timeout=60) == 137
    assert None in answers
    kill_orphans(data_dir)

    server = start(env, data_dir, "after-burst", None)
    try:
        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            timeout=60,
            headers={"Authorization": f"Bearer {token(server)}"},
        )
        ids = {p["id"] for p in api.get("/projects", params={"limit": 100}).json()["projects"]}
        assert sorted(
            p.name.removesuffix(".git") for p in (data_dir / "git").glob("*.git")
        ) == sorted(ids)
        assert buckets(data_dir, env["BALSAM_STORAGE__S3_PORT"]) == ids
        engine = create_engine(f"sqlite:///{database}")
        with Session(engine) as session:
            assert session.scalars(select(PendingOperation)).all() == []
            repaired = session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "project.create", AuditEvent.outcome == "failure"
                )
            ).all()
        engine.dispose()
        assert len(ids) >= answers.count(201)  # nothing that was answered is lost
        assert repaired and {r.details["repair"] for r in repaired} <= {"undone", "completed"}
        # Every interrupted name's clean id is free again.
        for number in range(20):
            if f"burst-k9-{number}" not in ids:
                body = {"name": f"burst k9 {number}", "branchName": "main"}
                r = post_patiently(api, "/projects", body)
                assert r.status_code == 201 and r.json()["id"] == f"burst-k9-{number}", r.text
        assert server.terminate() == 0
    finally:
        server.kill()
        kill_orphans(data_dir)


def storage_of(data_dir: Path, env: dict[str, str]) -> SeaweedIamStorage:
    """Balsam's own storage provider for that installation's weed (admin rights)."""
    admin = json.loads((data_dir / "storage" / "admin.json").read_text())
    grpc = int(env["BALSAM_STORAGE__FILER_PORT"]) + GRPC_PORT_OFFSET
    return SeaweedIamStorage.connect(
        f"http://127.0.0.1:{env['BALSAM_STORAGE__S3_PORT']}",
        "us-east-1",
        admin["access_key"],
        admin["secret_key"],
        filer_grpc_address=f"127.0.0.1:{grpc}",
        conf_dir=data_dir / "storage" / "conf",
    )


def test_key_mints_and_revokes_killed_midway_leave_no_key_behind(
    up_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A mint killed after the storage server made the key (its secret never reached
    anyone), and a revoke killed after the key died but before its row went: after
    a restart, the keys on the storage server are exactly the recorded ones."""
    database = tmp_path / "balsam.db"
    env = {
        **up_env,
        "BALSAM_ADMIN_PASSWORD": PASSWORD,
        "BALSAM_DATABASE_URL": f"sqlite:///{database}",
        "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1]),
    }
    data_dir = tmp_path / "data"

    server = start(env, data_dir, "mint", "credential.create:key")
    api = httpx.Client(
        base_url=f"{server.url}/api/v1",
        timeout=60,
        headers={"Authorization": f"Bearer {token(server)}"},
    )
    created = post_patiently(api, "/projects", {"name": NAME, "branchName": "main"})
    assert created.status_code == 201, created.text
    first_key = created.json()["credentials"]["accessKey"]
    with pytest.raises(httpx.TransportError):
        api.post(f"/projects/{CLEAN_ID}/credentials", json={"name": "lost"})
    assert server.process.wait(timeout=30) == 137
    kill_orphans(data_dir)

    server = start(env, data_dir, "revoke", "credential.revoke:key")
    api = httpx.Client(
        base_url=f"{server.url}/api/v1",
        timeout=60,
        headers={"Authorization": f"Bearer {token(server)}"},
    )
    with pytest.raises(httpx.TransportError):
        api.delete(f"/projects/{CLEAN_ID}/credentials/{first_key}")
    assert server.process.wait(timeout=30) == 137
    kill_orphans(data_dir)

    server = start(env, data_dir, "after-keys", None)
    storage = storage_of(data_dir, env)
    try:
        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            timeout=60,
            headers={"Authorization": f"Bearer {token(server)}"},
        )
        assert api.get(f"/projects/{CLEAN_ID}/credentials").json()["credentials"] == []
        assert not storage.key_exists(first_key)
        # Nothing scoped to the bucket is left that Balsam does not know: the
        # would-be sweep finds nothing.
        assert storage.revoke_bucket_keys(CLEAN_ID) == 0
        engine = create_engine(f"sqlite:///{database}")
        with Session(engine) as session:
            assert session.scalars(select(PendingOperation)).all() == []
            repairs = {
                e.action: e.details["repair"]
                for e in session.scalars(select(AuditEvent).where(AuditEvent.outcome == "failure"))
            }
        engine.dispose()
        assert repairs == {"credential.create": "undone", "credential.revoke": "completed"}
        minted = post_patiently(api, f"/projects/{CLEAN_ID}/credentials", {"name": "works"})
        assert minted.status_code == 201, minted.text
        assert server.terminate() == 0
    finally:
        storage.close()
        server.kill()
        kill_orphans(data_dir)
