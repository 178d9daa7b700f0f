"""The ``balsam`` command line: in-process (CliRunner), and ``balsam up`` as a real process."""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from balsam.cli import main
from balsam.db.engine import make_engine, make_sessionmaker
from balsam.db.migrate import upgrade
from balsam.db.models import AuditEvent
from balsam.domain.audit.service import AuditLog, AuditRecord
from balsam.embedded.seaweedfs import port_is_free
from tests.fixtures.app import ENVIRONMENTS
from tests.fixtures.postgres import postgres_selected
from tests.fixtures.server import free_port

PASSWORD = "cli-Tests-password-7"


@pytest.fixture
def cli_env(fresh_database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for in-process commands: a fresh database and data dir."""
    return {
        "BALSAM_DATABASE_URL": fresh_database_url,
        "BALSAM_DATA_DIR": str(tmp_path / "data"),
        "BALSAM_NEW_USER_PASSWORD": PASSWORD,
    }


def balsam(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input)


# -- balsam settings ----------------------------------------------------------------------


def test_settings_lists_every_variable_with_secrets_unset() -> None:
    result = balsam({"BALSAM_ADMIN_PASSWORD": "do-not-print-me"}, "settings")

    assert result.exit_code == 0, result.output
    assert "BALSAM_PORT" in result.output
    assert "BALSAM_STORAGE__S3_PORT" in result.output
    assert "BALSAM_AUTH__SESSION_TTL_HOURS" in result.output
    assert "do-not-print-me" not in result.output


def test_settings_markdown_is_a_table() -> None:
    result = balsam({}, "settings", "--format", "markdown")

    assert result.exit_code == 0
    assert result.output.startswith("# Settings\n")
    assert "| `BALSAM_ADMIN_PASSWORD` | `secret \\| None` | `unset` |" in result.output


# -- balsam audit verify ------------------------------------------------------------------


def write_audit_records(url: str, count: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    audit = AuditLog(make_sessionmaker(engine))
    for n in range(count):
        audit.record(
            AuditRecord(actor="tester", action="test.event", target=f"thing:{n}", details={"n": n})
        )
    engine.dispose()


def tamper(url: str, record_id: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.id == record_id).values(actor="mallory"))
    engine.dispose()


def test_audit_verify_accepts_an_intact_chain(cli_env: dict[str, str]) -> None:
    write_audit_records(cli_env["BALSAM_DATABASE_URL"], 3)

    result = balsam(cli_env, "audit", "verify")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok: 3 records"


def test_audit_verify_finds_a_tampered_record(cli_env: dict[str, str]) -> None:
    url = cli_env["BALSAM_DATABASE_URL"]
    write_audit_records(url, 4)
    tamper(url, 3)

    result = balsam(cli_env, "audit", "verify")

    assert result.exit_code == 1
    assert result.output.startswith("BROKEN at record 3")


# -- balsam admin -------------------------------------------------------------------------


def user_row(output: str, username: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.startswith(username + " "))


def test_admin_creates_lists_deactivates_and_activates_users(cli_env: dict[str, str]) -> None:
    created = balsam(
        cli_env,
        "admin",
        "create-user",
        "carol",
        "--admin",
        "--email",
        "carol@example.org",
        "--display-name",
        "Carol C",
    )
    assert created.exit_code == 0, created.output
    assert PASSWORD not in created.output

    listed = balsam(cli_env, "admin", "list-users")
    assert user_row(listed.output, "carol")[:4] == ["carol", "yes", "yes", "carol@example.org"]

    assert balsam(cli_env, "admin", "deactivate", "carol").exit_code == 0
    assert user_row(balsam(cli_env, "admin", "list-users").output, "carol")[2] == "no"

    assert balsam(cli_env, "admin", "activate", "carol").exit_code == 0
    assert user_row(balsam(cli_env, "admin", "list-users").output, "carol")[2] == "yes"


def test_admin_changes_are_audited_as_the_cli(cli_env: dict[str, str]) -> None:
    balsam(cli_env, "admin", "create-user", "dave")
    balsam(cli_env, "admin", "deactivate", "dave")

    engine = make_engine(cli_env["BALSAM_DATABASE_URL"])
    rows, _ = AuditLog(make_sessionmaker(engine)).page()
    engine.dispose()
    assert [(r.action, r.target) for r in rows] == [
        ("user.update", "user:dave"),
        ("user.create", "user:dave"),
    ]
    assert all(r.actor.startswith("cli:") for r in rows)
    assert balsam(cli_env, "audit", "verify").output.strip() == "ok: 2 records"


def test_an_admin_command_on_a_new_data_dir_says_so_and_keeps_it_private(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "elsewhere"
    env = {**cli_env, "BALSAM_DATA_DIR": str(data_dir), "BALSAM_DATABASE_URL": ""}

    result = balsam(env, "admin", "create-user", "zed")

    assert result.exit_code == 0, result.output
    assert "no Balsam database at" in result.output  # stderr: mixed into output here
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert (data_dir / "balsam.db").stat().st_mode & 0o077 == 0
    again = balsam(env, "admin", "create-user", "zoe")
    assert again.exit_code == 0 and "no Balsam database" not in again.output


def test_admin_prompts_for_the_password_when_the_variable_is_unset(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "BALSAM_NEW_USER_PASSWORD": ""}

    result = balsam(env, "admin", "create-user", "erin", input=f"{PASSWORD}\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create-user", "Not Valid"], "username"),
        (["deactivate", "nobody"], "No user 'nobody'"),
        (["activate", "nobody"], "No user 'nobody'"),
    ],
)
def test_admin_refusals_are_one_line_errors(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    result = balsam(cli_env, "admin", *args)

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_admin_refuses_a_taken_username_and_a_weak_password(cli_env: dict[str, str]) -> None:
    assert balsam(cli_env, "admin", "create-user", "frank").exit_code == 0

    taken = balsam(cli_env, "admin", "create-user", "frank")
    weak = balsam({**cli_env, "BALSAM_NEW_USER_PASSWORD": "short"}, "admin", "create-user", "gina")

    assert taken.exit_code == 1 and "taken" in taken.output
    assert weak.exit_code == 1 and "Error:" in weak.output


# -- balsam up (a real process) -----------------------------------------------------------


def balsam_command() -> list[str]:
    script = Path(sys.executable).with_name("balsam")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from balsam.cli import main; main()"]
    )


def seaweed_http_ports(count: int) -> list[int]:
    """Free ports whose gRPC twins (port + 10000, weed's rule) are free too.

    Both lie below Linux's ephemeral range (32768 on): a twin up there could be taken
    by any outgoing connection between this check and weed's bind."""
    reserved = {23646, 33646}  # weed mini's admin port and its twin (not configurable)
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(10000, 22767)
        if {port, port + 10000} & reserved or port in chosen:
            continue
        if port_is_free(port) and port_is_free(port + 10000):
            chosen.append(port)
    return chosen


def weed_pids(storage_dir: Path) -> list[int]:
    """Processes whose command line mentions ``storage_dir`` (the embedded weed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "weed" in cmdline and str(storage_dir) in cmdline:
            pids.append(int(entry.name))
    return pids


class BalsamUp:
    """``balsam up`` as a child process, with its output in files."""

    def __init__(self, env: dict[str, str], data_dir: Path, port: int, name: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        # The workspaces' port, below the ephemeral range: its default (port + 1) next to
        # a free ephemeral port may be any connection's.
        if "BALSAM_WORKSPACES__PORT" not in env:
            env = {**env, "BALSAM_WORKSPACES__PORT": str(seaweed_http_ports(1)[0])}
        self.stdout_path = data_dir.parent / f"{name}.out"
        self.stderr_path = data_dir.parent / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*balsam_command(), "up", "--data-dir", str(data_dir), "--port", str(port)],
                env=env,
                stdout=out,
                stderr=err,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_until_serving(self, timeout: float = 120) -> None:
        deadline, last = time.monotonic() + timeout, "no attempt"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"balsam up exited with {self.process.returncode}:\n{self.stderr}")
            try:
                response = httpx.get(f"{self.url}/api/v1/openapi.json", timeout=5)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.25)
        pytest.fail(
            f"balsam up did not answer within {timeout} s (last attempt: {last}):\n{self.stderr}"
        )

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def up_env(fresh_database_url: str) -> dict[str, str]:
    return up_environment(fresh_database_url)


def up_environment(database_url: str) -> dict[str, str]:
    """The environment of a `balsam up` that clashes with no other on this machine."""
    # The admin port too: its default (23646) would clash between `balsam up`s.
    s3, master, volume, filer, admin, workspaces = seaweed_http_ports(6)
    env = {key: value for key, value in os.environ.items() if not key.startswith("BALSAM_")}
    return {
        **env,
        "BALSAM_DATABASE_URL": database_url,
        "BALSAM_WORKSPACES__ENVIRONMENTS_DIR": str(ENVIRONMENTS),
        "BALSAM_WORKSPACES__UID_BASE": str(400_000 + secrets.randbelow(1000) * 1000),
        "BALSAM_STORAGE__S3_PORT": str(s3),
        "BALSAM_STORAGE__MASTER_PORT": str(master),
        "BALSAM_STORAGE__VOLUME_PORT": str(volume),
        "BALSAM_STORAGE__FILER_PORT": str(filer),
        "BALSAM_STORAGE__ADMIN_PORT": str(admin),
        "BALSAM_WORKSPACES__PORT": str(workspaces),
    }


@contextmanager
def serving(env: dict[str, str], data_dir: Path, name: str = "up") -> Iterator[BalsamUp]:
    """`balsam up` serving until the block ends; then it and its weed are killed."""
    server = BalsamUp(env, data_dir, free_port(), name)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.kill()
        for pid in weed_pids(data_dir / "storage"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def running(up_env: dict[str, str], tmp_path: Path) -> Iterator[BalsamUp]:
    with serving(up_env, tmp_path / "data", "first") as server:
        yield server


def run_balsam_up(
    env: dict[str, str], data_dir: Path, port: int
) -> subprocess.CompletedProcess[str]:
    command = [*balsam_command(), "up", "--data-dir", str(data_dir), "--port", str(port)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_balsam_up_serves_and_prints_the_admin_password_once(
    running: BalsamUp, up_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    # Private; as root, others may traverse it (not list it) to reach workspace homes.
    assert (data_dir.stat().st_mode & 0o777) in (0o700, 0o701)
    match = re.search(r"admin password: (\S+)", running.stdout)
    assert match, running.stdout
    password = match.group(1)
    assert running.stdout.count(password) == 1
    assert password not in running.stderr
    assert "HTTP Request:" not in running.stderr  # start-up's probes are not news
    # The README's name for this machine, one name throughout (cookies follow the name).
    local = running.url.replace("127.0.0.1", "localhost")
    assert f"Balsam is starting at {local}\n" in running.stdout
    assert f"curl -u admin -X POST {local}/api/v1/users/me/tokens" in running.stdout

    token = httpx.post(
        f"{running.url}/api/v1/users/me/tokens",
        auth=("admin", password),
        json={"name": "cli-test"},
        timeout=10,
    )
    assert token.status_code == 201, token.text

    # The libraries of rare requests (Parquet; PostgreSQL queries, unless the database
    # is PostgreSQL) are not loaded by starting: their shared objects are not mapped.
    maps = Path(f"/proc/{running.process.pid}/maps").read_text()
    rare = ("libarrow",) if postgres_selected() else ("libarrow", "libpq")
    assert not [line for line in maps.splitlines() if any(lib in line for lib in rare)]

    weed = weed_pids(data_dir / "storage")
    assert weed, "the embedded SeaweedFS is not running"
    assert running.terminate() == 0
    assert weed_pids(data_dir / "storage") == []

    again = BalsamUp(up_env, data_dir, free_port(), "second")
    try:
        again.wait_until_serving()
        assert "admin password" not in again.stdout
        assert again.terminate() == 0
    finally:
        again.kill()


def server_pids(workspace_id: str) -> list[int]:
    """Processes running the workspace's JupyterLab server."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"/workspaces/{workspace_id}/" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_stopping_balsam_up_stops_its_workspaces(running: BalsamUp) -> None:
    match = re.search(r"admin password: (\S+)", running.stdout)
    assert match, running.stdout
    token = httpx.post(
        f"{running.url}/api/v1/users/me/tokens",
        auth=("admin", match.group(1)),
        json={"name": "cli-test"},
        timeout=10,
    ).json()["token"]
    api = httpx.Client(
        base_url=f"{running.url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    project = api.post("/projects", json={"name": "Upp och ner", "branchName": "main"}).json()
    workspace = api.post(
        "/workspaces",
        json={
            "name": "Kort",
            "templateId": "python",
            "projectId": project["id"],
            "branchId": "main",
        },
    ).json()
    deadline = time.monotonic() + 600
    while (state := api.get(f"/workspaces/{workspace['id']}").json())["state"] != "running":
        assert state["state"] != "failed" and time.monotonic() < deadline, state
        time.sleep(0.25)
    assert server_pids(workspace["id"])
    assert running.terminate() == 0
    assert server_pids(workspace["id"]) == []


def test_balsam_up_refuses_a_data_dir_in_use(
    running: BalsamUp, up_env: dict[str, str], tmp_path: Path
) -> None:
    second = run_balsam_up(up_env, tmp_path / "data", free_port())

    assert second.returncode == 2
    assert "is in use by another `balsam up`" in second.stderr
    assert "Traceback" not in second.stderr
    assert running.process.poll() is None


def test_balsam_up_refuses_a_taken_port(
    running: BalsamUp, up_env: dict[str, str], tmp_path: Path
) -> None:
    port = int(running.url.rsplit(":", 1)[1])

    second = run_balsam_up(up_env, tmp_path / "other", port)

    assert second.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert weed_pids(tmp_path / "other" / "storage") == []
