"""Workspace servers Balsam no longer accounts for are stopped when it starts.

JupyterLab servers outlive Balsam on purpose (they are re-attached), so a server
whose workspace has no row, or a stopped or failed one, would otherwise run on
unseen. The servers here are stand-ins: a process with a server's command line,
recorded in ``run.json`` as the provider records one, which is all
``stop_unknown`` goes by (a real JupyterLab needs a built template environment).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from balsam.context import AppContext
from balsam.db.models import Workspace
from balsam.domain.workspaces.supervisor import WorkspaceSupervisor
from balsam.providers.workspaces.local import LocalWorkspaceProvider
from balsam.providers.workspaces.unix import runs_server
from tests.fixtures.app import TestUser


class _Servers:
    """Stand-in servers under a provider's root, all stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, workspace_id: str) -> int:
        folder = self.root / workspace_id
        folder.mkdir(parents=True)
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)", "jupyter-lab",
             f"--ServerApp.base_url=/workspaces/{workspace_id}/"],
            start_new_session=True,
        )  # fmt: skip
        self.started[workspace_id] = process
        # Popen returns once the exec has begun, before the kernel has put the new
        # command line in place: /proc/<pid>/cmdline can still show the parent's for
        # a moment, and the stand-in would not look like a server yet.
        deadline = time.monotonic() + 10
        while not runs_server(process.pid, workspace_id) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runs_server(process.pid, workspace_id), self.describe(workspace_id)
        run = {"pid": process.pid, "socket": str(folder / "s.sock"), "uid": None, "token": "t"}
        (folder / "run.json").write_text(json.dumps(run))
        return process.pid

    def runs(self, workspace_id: str, timeout: float = 0) -> bool:
        """Whether the server still runs (after up to ``timeout`` s for it to end)."""
        pid, deadline = self.started[workspace_id].pid, time.monotonic() + timeout
        while runs_server(pid, workspace_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        return runs_server(pid, workspace_id)

    def describe(self, workspace_id: str) -> str:
        """What became of a stand-in, for a failed assertion's message."""
        process = self.started[workspace_id]
        try:
            stat = Path(f"/proc/{process.pid}/stat").read_text()
        except OSError as exc:
            stat = str(exc)
        return f"{workspace_id}: pid {process.pid}, exit {process.poll()}, stat {stat!r}"

    def close(self) -> None:
        for workspace_id, process in self.started.items():
            process.kill()
            process.wait()
            shutil.rmtree(self.root / workspace_id, ignore_errors=True)


def _servers(root: Path) -> Iterator[_Servers]:
    servers = _Servers(root)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def servers(provider: LocalWorkspaceProvider) -> Iterator[_Servers]:
    yield from _servers(provider.root)


def test_servers_of_unknown_workspaces_are_stopped_and_known_ones_kept(
    provider: LocalWorkspaceProvider, servers: _Servers
) -> None:
    servers.start("known")
    servers.start("stale")
    (provider.root / "gone").mkdir()  # its server died: nothing to stop
    (provider.root / "gone" / "run.json").write_text(json.dumps({"pid": 2**22 + 1}))

    assert provider.stop_unknown({"known"}) == ["stale"]

    assert not servers.runs("stale", timeout=10)
    assert not (provider.root / "stale" / "run.json").exists()
    assert (provider.root / "stale").is_dir()  # the home is kept, as by stop
    assert servers.runs("known")
    assert provider.stop_unknown({"known"}) == []


def test_a_known_server_is_never_stopped(
    provider: LocalWorkspaceProvider, servers: _Servers
) -> None:
    servers.start("one")
    servers.start("two")

    assert provider.stop_unknown({"one", "two"}) == []
    assert servers.runs("one"), servers.describe("one")
    assert servers.runs("two"), servers.describe("two")


@pytest.fixture
def ctx_servers(ctx: AppContext) -> Iterator[_Servers]:
    provider = ctx.providers.workspaces
    assert isinstance(provider, LocalWorkspaceProvider)
    yield from _servers(provider.root)


def test_start_stops_servers_of_no_pending_or_running_workspace(
    ctx: AppContext,
    alice: TestUser,
    project: dict[str, str],
    ctx_servers: _Servers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tag = secrets.token_hex(3)
    rows = {state: f"stale-{state}-{tag}" for state in ("running", "stopped", "failed")}
    ghost = f"stale-ghost-{tag}"  # no row at all
    with ctx.sessions() as session, session.begin():
        for state, workspace_id in rows.items():
            session.add(Workspace(id=workspace_id, name=workspace_id, project_id=project["id"],
                                  branch="main", template_id="python", environment="python-0",
                                  owner_id=alice.actor.user_id, state=state))  # fmt: skip
    for workspace_id in [*rows.values(), ghost]:
        ctx_servers.start(workspace_id)
    try:
        with caplog.at_level(logging.WARNING, logger="balsam.domain.workspaces.supervisor"):
            WorkspaceSupervisor(ctx).reattach()

        assert ctx_servers.runs(rows["running"])
        for stale in (rows["stopped"], rows["failed"], ghost):
            assert not ctx_servers.runs(stale, timeout=10), stale
            assert any(stale in record.getMessage() for record in caplog.records), stale
        with ctx.sessions() as session:
            state = session.scalar(select(Workspace.state).where(Workspace.id == rows["running"]))
        assert state == "running"
    finally:
        with ctx.sessions() as session, session.begin():
            session.execute(delete(Workspace).where(Workspace.id.in_(rows.values())))
