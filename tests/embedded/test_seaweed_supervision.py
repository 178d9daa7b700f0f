"""The embedded weed supervised: a crash is logged and weed restarted with backoff;
meanwhile requests that need storage answer 503 with Retry-After, and readiness
says storage is failing, within seconds; a paused weed holds no request longer
than the client timeouts. Every fault test is bounded in time."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient

import balsam
from balsam.embedded import EmbeddedServiceError, SeaweedPorts, SeaweedServer
from balsam.embedded.stale import stop_stale_processes
from balsam.embedded.supervisor import Supervisor, describe_status
from balsam.errors import ProviderError
from balsam.providers.storage.iam_pb import iam_pb2
from balsam.providers.storage.seaweed_iam import scoped_bucket
from balsam.providers.storage.seaweed_iam_client import FilerIam
from balsam.web.errors import install_error_handlers
from tests.cli.test_cli import BalsamUp, seaweed_http_ports, up_env, weed_pids  # noqa: F401 - up_env: a fixture
from tests.fixtures.server import free_port

PASSWORD = "Supervision-password-7"


# -- the supervisor on a real weed ---------------------------------------------------------


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[Supervisor, SeaweedServer]]:
    server = SeaweedServer(tmp_path / "storage", ports=SeaweedPorts.pick_free(),
                           admin_access_key="SUPERVISED" + secrets.token_hex(5).upper(),
                           admin_secret_key=secrets.token_urlsafe(30), memory_limit_mib=512,
                           stop_timeout=5.0)  # fmt: skip
    supervisor = Supervisor(server, min_backoff=0.5, max_backoff=2.0)
    supervisor.start()
    try:
        yield supervisor, server
    finally:
        supervisor.stop()


def _s3(server: SeaweedServer) -> object:
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=server.admin_access_key,
                        aws_secret_access_key=server._admin_secret_key,
                        config=Config(connect_timeout=1, read_timeout=3,
                                      retries={"total_max_attempts": 1}))  # fmt: skip


def _wait_for(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_killed_weed_is_logged_and_restarted_with_its_data(
    supervised: tuple[Supervisor, SeaweedServer], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, server = supervised
    s3 = _s3(server)
    s3.create_bucket(Bucket="survives-a-crash")  # type: ignore[attr-defined]
    old_pid = server.pid
    assert old_pid is not None
    with caplog.at_level(logging.WARNING, logger="balsam.embedded.supervisor"):
        os.kill(old_pid, signal.SIGKILL)
        _wait_for(lambda: supervisor.restarts == 1, timeout=20)
    assert server.pid not in (None, old_pid)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]  # type: ignore[attr-defined]
    assert "survives-a-crash" in names
    messages = [r.getMessage() for r in caplog.records]
    assert any("exited unexpectedly (killed by SIGKILL)" in m for m in messages), messages
    assert any("SeaweedFS restarted" in m for m in messages), messages
    # Reaped: no zombie of the crashed weed is left behind.
    assert not Path(f"/proc/{old_pid}").exists()


def test_stop_stops_a_restarted_weed_too(supervised: tuple[Supervisor, SeaweedServer]) -> None:
    supervisor, server = supervised
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    _wait_for(lambda: supervisor.restarts == 1, timeout=20)
    supervisor.stop()
    assert not server.running
    assert not weed_pids(server.data_dir)


class _FlakyService:
    """Fault injection: a service that dies at once and fails its next starts."""

    def __init__(self, failures: int) -> None:
        self.failures, self.alive = failures, False
        self.starts: list[float] = []

    def start(self) -> None:
        self.starts.append(time.monotonic())
        if len(self.starts) > 1 and self.failures:
            self.failures -= 1
            raise EmbeddedServiceError("port taken")
        self.alive = len(self.starts) > 1  # the first start "crashes" at once

    def stop(self) -> None:
        pass

    def exit_status(self) -> int | None:
        return None if self.alive else -signal.SIGKILL


def test_failed_restarts_are_retried_with_doubling_backoff() -> None:
    service = _FlakyService(failures=3)
    supervisor = Supervisor(service, min_backoff=0.2, max_backoff=0.8, poll_interval=0.01)
    supervisor.start()
    try:
        _wait_for(lambda: supervisor.restarts == 1, timeout=10)
    finally:
        supervisor.stop()
    gaps = [b - a for a, b in zip(service.starts, service.starts[1:], strict=False)]
    assert len(gaps) == 4
    for gap, expected in zip(gaps, [0.2, 0.4, 0.8, 0.8], strict=True):
        assert expected <= gap < expected + 0.5, gaps


def test_a_first_start_that_fails_is_raised() -> None:
    class Broken(_FlakyService):
        def start(self) -> None:
            raise EmbeddedServiceError("no weed")

    with pytest.raises(EmbeddedServiceError, match="no weed"):
        Supervisor(Broken(0)).start()


def test_exit_statuses_are_described() -> None:
    assert describe_status(-9) == "killed by SIGKILL"
    assert describe_status(3) == "exit status 3"


# -- the web layer's answer ------------------------------------------------------------------


def _raise(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    def fail() -> None:
        raise exc

    return TestClient(app)


@pytest.mark.parametrize(
    "code",
    [
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "ReadTimeoutError",
        "EndpointConnectionError",
        "ConnectError",
        "timeout",
    ],
)
def test_an_unreachable_backend_is_503_with_retry_after(code: str) -> None:
    r = _raise(ProviderError("Object storage failed.", details={"code": code})).get("/x")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["reason"] == "backend-unavailable"


def test_a_service_rewording_an_unreachable_backend_is_503_too() -> None:
    cause = ProviderError("Object storage failed.", details={"code": "UNAVAILABLE"})
    reworded = ProviderError("Creating the project failed and was undone.")
    reworded.__cause__ = cause
    assert _raise(reworded).get("/x").status_code == 503


@pytest.mark.parametrize("code", ["AccessDenied", "BucketAlreadyExists", None])
def test_other_backend_failures_stay_502(code: str | None) -> None:
    details = {"code": code} if code else {}
    r = _raise(ProviderError("Object storage failed.", details=details)).get("/x")
    assert r.status_code == 502 and "retry-after" not in r.headers


# -- stale processes --------------------------------------------------------------------------


def _sleeper(marker: str, *wrapper: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*wrapper, sys.executable, "-c", "import time; time.sleep(60)",
                             marker])  # fmt: skip


def test_a_stale_process_of_the_data_dir_is_stopped(tmp_path: Path) -> None:
    marker = f"-dir={tmp_path}/data"
    stale, other = _sleeper(marker), _sleeper(f"-dir={tmp_path}/other")
    try:
        _wait_for(lambda: marker.encode() in Path(f"/proc/{stale.pid}/cmdline").read_bytes(), 5)
        assert stop_stale_processes(marker, uid=os.geteuid(), timeout=5) == [stale.pid]
        assert stale.wait(5) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for process in (stale, other):
            process.kill()
            process.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a process of another uid)")
def test_a_process_of_another_uid_posing_as_weed_is_left_alone(tmp_path: Path) -> None:
    marker = f"-dir={tmp_path}/data"
    impostor = _sleeper(marker, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "--")  # fmt: skip
    try:
        time.sleep(0.3)
        assert stop_stale_processes(marker, uid=os.geteuid(), timeout=2) == []
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


# -- through `balsam up`: 503 while down, readiness, recovery ---------------------------------


@pytest.fixture
def up(up_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[BalsamUp, httpx.Client]]:  # noqa: F811
    env = {
        **up_env,
        "BALSAM_ADMIN_PASSWORD": PASSWORD,
        "BALSAM_DATABASE_URL": f"sqlite:///{tmp_path / 'balsam.db'}",
        "PYTHONPATH": str(Path(balsam.__file__).resolve().parents[1]),
        # weed's admin port defaults to 23646: another `balsam up` may be running
        "BALSAM_STORAGE__ADMIN_PORT": str(seaweed_http_ports(1)[0]),
    }
    server = BalsamUp(env, tmp_path / "data", free_port(), "supervised")
    try:
        server.wait_until_serving()
        r = httpx.post(
            f"{server.url}/api/v1/users/me/tokens",
            auth=("admin", PASSWORD),
            json={"name": "t"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as api:
            created = api.post("/projects", json={"name": "Supervised", "branchName": "main"})
            assert created.status_code == 201, created.text
            assert created.json()["id"] == "supervised"
            yield server, api
    finally:
        server.kill()
        for pid in weed_pids(tmp_path / "data" / "storage"):
            os.kill(pid, signal.SIGKILL)


def _weed_pid(server: BalsamUp, data_dir: Path) -> int:
    pids = weed_pids(data_dir / "storage")
    assert len(pids) == 1, pids
    return pids[0]


def _storage_state(api: httpx.Client) -> str:
    return str(api.get("/health/ready", timeout=10).json()["components"]["storage"])


def test_a_killed_weed_answers_503_then_heals(
    up: tuple[BalsamUp, httpx.Client], tmp_path: Path
) -> None:
    server, api = up
    os.kill(_weed_pid(server, tmp_path / "data"), signal.SIGKILL)
    started = time.monotonic()
    r = api.post("/projects/supervised/credentials", json={"name": "while down"})
    assert time.monotonic() - started < 5
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["reason"] == "backend-unavailable"
    assert _storage_state(api) in {"failing", "timeout"}

    _wait_for(lambda: _storage_state(api) == "ok", timeout=20)
    created = api.post("/projects/supervised/credentials", json={"name": "after"})
    assert created.status_code == 201, created.text
    assert "SeaweedFS exited unexpectedly (killed by SIGKILL)" in server.stderr
    _wait_for(lambda: "SeaweedFS restarted" in server.stderr, timeout=10)


def test_a_paused_weed_holds_no_request_beyond_the_bound(
    up: tuple[BalsamUp, httpx.Client], tmp_path: Path
) -> None:
    server, api = up
    pid = _weed_pid(server, tmp_path / "data")
    os.kill(pid, signal.SIGSTOP)
    resumer = threading.Timer(40, os.kill, (pid, signal.SIGCONT))  # bounded, whatever happens
    resumer.start()
    try:
        started = time.monotonic()
        r = api.post("/projects/supervised/credentials", json={"name": "while paused"}, timeout=40)
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert elapsed < 10, elapsed  # the gRPC deadline (3 s), twice on a new channel
        started = time.monotonic()
        r = api.post("/projects", json={"name": "Paused", "branchName": "main"}, timeout=40)
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert elapsed < 15, elapsed  # was 120 s: two 60 s S3 reads
        assert _storage_state(api) == "timeout"
    finally:
        resumer.cancel()
        os.kill(pid, signal.SIGCONT)
    _wait_for(lambda: _storage_state(api) == "ok", timeout=20)
    # Whatever the paused request left on the server is listed (so it can be
    # revoked), or was undone: no key exists that its user cannot see.
    # The timed-out mint may still be carried out by weed: it is journaled, and the
    # project takes no new operation (503, Retry-After) until the repair has swept its
    # bucket.
    time.sleep(2)  # weed finishes what it had queued while paused
    deadline = time.monotonic() + 90  # the repair runs every 30 s
    while (
        r := api.post("/projects/supervised/credentials", json={"name": "after"})
    ).status_code == 503 and time.monotonic() < deadline:
        time.sleep(1)
    assert r.status_code == 201, r.text
    listed = {
        c["accessKey"] for c in api.get("/projects/supervised/credentials").json()["credentials"]
    }
    assert _server_keys(tmp_path / "data", "supervised") == listed


def _server_keys(data_dir: Path, bucket: str) -> set[str]:
    """Access keys of every identity on the server scoped to ``bucket``."""
    filer_grpc = _filer_grpc_port(data_dir)
    iam = FilerIam(f"127.0.0.1:{filer_grpc}", data_dir / "storage" / "conf")
    try:
        names = iam.call("list", lambda s: s.ListUsers, iam_pb2.ListUsersRequest())
        keys = set()
        for name in names.usernames if names else []:
            reply = iam.call("get", lambda s: s.GetUser, iam_pb2.GetUserRequest(username=name))
            if reply is not None and scoped_bucket(reply.identity) == bucket:
                keys |= {c.access_key for c in reply.identity.credentials}
        return keys
    finally:
        iam.close()


def _filer_grpc_port(data_dir: Path) -> int:
    options = (data_dir / "storage" / "data" / "mini.options").read_text()
    return int(
        next(
            line.split("=", 1)[1] for line in options.split() if line.startswith("filer.port.grpc=")
        )
    )


def test_a_key_minted_after_its_client_gave_up_is_listed(
    up: tuple[BalsamUp, httpx.Client], tmp_path: Path
) -> None:
    """The mint finishes within the bound after weed resumes; its client is gone, so
    the secret is lost, but the key is listed (and audited): its user can revoke it."""
    server, api = up
    pid = _weed_pid(server, tmp_path / "data")
    os.kill(pid, signal.SIGSTOP)
    resumer = threading.Timer(1.5, os.kill, (pid, signal.SIGCONT))
    resumer.start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            api.post("/projects/supervised/credentials", json={"name": "abandoned"}, timeout=1)
    finally:
        resumer.join()
        os.kill(pid, signal.SIGCONT)

    def listed() -> set[str]:
        reply = api.get("/projects/supervised/credentials").json()
        return {c["accessKey"] for c in reply["credentials"] if c["name"] == "abandoned"}

    _wait_for(lambda: len(listed()) == 1, timeout=15)
    assert listed() <= _server_keys(tmp_path / "data", "supervised")
    (key,) = listed()
    events = api.get("/projects/supervised/audit").json()["events"]
    assert any(
        e["action"] == "credential.create" and e["target"].endswith(f"credential:{key}")
        for e in events
    )
