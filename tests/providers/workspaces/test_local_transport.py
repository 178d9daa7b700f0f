"""The local provider's transport, on a real JupyterLab: a unix socket in a short
private runtime folder whatever the length of the data directory; the runtime
base is refused when someone else could write it; a server left by an earlier
release on a TCP port is stopped when found."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from balsam.domain.workspaces.templates import load_templates
from balsam.providers.workspaces import runtime
from balsam.providers.workspaces.base import WorkspaceSecrets, WorkspaceSpec
from balsam.providers.workspaces.environments import EnvironmentBuilder
from balsam.providers.workspaces.jupyter import free_port, get_json
from balsam.providers.workspaces.local import LocalWorkspaceProvider
from balsam.providers.workspaces.unix import runs_server
from tests.fixtures.app import ENVIRONMENTS

#: A data directory longer than a unix socket path may be.
LONG = "a-data-directory-deeper-than-any-unix-socket-path-may-reach"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="balsam-transport-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def clone_url(scratch: Path) -> Iterator[str]:
    """A project repository served by ``git daemon`` (a file:// clone by another uid
    is refused by git's ownership check)."""
    repos = scratch / "repos"
    repos.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", "--bare", "-b", "main", str(repos / "p.git")], check=True)
    subprocess.run([*git, "clone", "-q", str(repos / "p.git"), str(scratch / "w")], check=True)
    (scratch / "w" / "README.md").write_text("hej\n")
    for args in (["add", "README.md"], ["commit", "-qm", "init"], ["push", "-q", "origin", "main"]):
        subprocess.run([*git, *args], cwd=scratch / "w", check=True)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            f"--base-path={repos}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(repos),
        ],
        stderr=subprocess.DEVNULL,
    )
    yield f"git://127.0.0.1:{port}/p.git"
    daemon.terminate()
    daemon.wait(timeout=10)


@pytest.fixture(scope="module")
def provider(scratch: Path) -> Iterator[LocalWorkspaceProvider]:
    root = scratch / LONG / LONG / "data" / "workspaces"
    assert len(str(root)) > runtime.MAX_SOCKET_PATH
    made = LocalWorkspaceProvider(
        root,
        EnvironmentBuilder(ENVIRONMENTS),
        uid_base=400_000 + secrets.randbelow(1000) * 100,
        start_timeout=120,
    )
    yield made
    for workspace_id in made.running():
        made.delete(workspace_id)


def _spec(workspace_id: str, clone_url: str) -> WorkspaceSpec:
    template = load_templates(None)["python"]
    return WorkspaceSpec(
        workspace_id=workspace_id,
        project_id="p",
        branch="main",
        owner_username="ada",
        owner_name="Ada",
        owner_email="ada@example.org",
        environment=template.environment,
        limits=template.limits,
        base_url=f"/workspaces/{workspace_id}/",
        clone_url=clone_url,
        env={},
        secrets=WorkspaceSecrets("AK", "SK", "ada", "git-token", secrets.token_urlsafe(24)),
    )


def test_a_long_data_directory_gets_a_short_private_socket(
    provider: LocalWorkspaceProvider, clone_url: str
) -> None:
    endpoint = provider.start(_spec("lang", clone_url), lambda _: None)
    try:
        assert endpoint.socket is not None
        assert (
            len(endpoint.socket) + len("-kernel-00000000-0000-0000-0000-000000000000-ipc-5")
            <= runtime.MAX_SOCKET_PATH
        )
        assert Path(endpoint.socket).parent.parent == provider.runtime_base
        assert "started" in get_json(endpoint, "api/status")  # type: ignore[operator]
        run = json.loads((provider.root / "lang" / "run.json").read_text())
        assert "port" not in run and run["socket"] == endpoint.socket
        assert provider.endpoint("lang") == endpoint
    finally:
        provider.stop("lang")
    assert not Path(endpoint.socket).parent.exists()  # the runtime folder goes with it


def test_two_data_directories_never_share_a_runtime_folder(scratch: Path) -> None:
    base = Path("/run/balsam")
    assert runtime.folder_for(base, scratch / "one" / "workspaces" / "w") != runtime.folder_for(
        base, scratch / "two" / "workspaces" / "w"
    )


def test_a_runtime_base_others_could_write_is_refused(scratch: Path) -> None:
    shared = scratch / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        runtime.ensure_base(shared)
    if os.geteuid() == 0:
        foreign = scratch / "foreign"
        foreign.mkdir(mode=0o711)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(PermissionError):
            runtime.ensure_base(foreign)
    with pytest.raises(ValueError, match="too long"):
        runtime.ensure_base(scratch / LONG / LONG)


def test_a_tcp_server_of_an_earlier_release_is_stopped(
    provider: LocalWorkspaceProvider, clone_url: str
) -> None:
    """Upgrade in place: a run.json with a port and no socket names a server whose
    kernels listen on TCP; it is stopped, not re-attached."""
    provider.start(_spec("gammal", clone_url), lambda _: None)
    run_file = provider.root / "gammal" / "run.json"
    run = json.loads(run_file.read_text())
    run_file.write_text(json.dumps({"pid": run["pid"], "port": 8888, "token": run["token"]}))
    provider.close()  # as after a restart: only run.json is known
    probe = provider.probe("gammal")
    assert not probe.alive and "earlier Balsam release" in (probe.reason or "")
    assert provider.endpoint("gammal") is None
    deadline = time.monotonic() + 10  # SIGKILL lands asynchronously
    while runs_server(run["pid"], "gammal") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runs_server(run["pid"], "gammal")
    assert "gammal" not in provider.running()
