"""Processes of a real workspace (Balsam as root): a fork bomb stops at the
workspace's process limit and the kernel survives it; Stop leaves no process of
the workspace's uid behind, not even a fork chain started from a kernel.

The tests run in order on one workspace; the fork chain comes last (the
zombies it leaves count against its uid until the system reaps them)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from balsam.context import AppContext
from balsam.providers.workspaces.unix import kill_user, processes_of
from tests.fixtures.app import TestUser, _make_user
from tests.fixtures.workspaces import Kernel, wait_state, ws_path

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspaces run under their own uid only as root"
)

#: The process limit of this module's workspace: lower than the default (1024) to
#: keep the fork bomb small on a shared test machine; the mechanism is the same.
LIMIT = 256

#: Forks children that sleep until the limit refuses one (or LIMIT + 200 forks, so
#: that without a limit the bomb is still bounded), counts the tasks of the kernel's
#: uid at that moment, then kills and reaps its children.
FORK_BOMB = f"""
import json, os, signal, time
kids, error = [], None
try:
    for _ in range({LIMIT} + 200):
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(120)
            finally:
                os._exit(0)
        kids.append(pid)
except OSError as exc:
    error = type(exc).__name__
tasks = 0
for entry in os.scandir("/proc"):
    try:
        status = open(f"/proc/{{entry.name}}/status").read() if entry.name.isdigit() else ""
    except OSError:
        continue
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields and fields["Uid"].split()[0] == str(os.getuid()):
        tasks += int(fields["Threads"])
for pid in kids:
    os.kill(pid, signal.SIGKILL)
for pid in kids:
    os.waitpid(pid, 0)
print(json.dumps({{"forked": len(kids), "error": error, "tasks": tasks}}))
"""

#: A fork chain, detached from the kernel in a session of its own: each process
#: forks and exits at once (retrying while out of processes), and every 100 hops
#: appends a dot to ~/chain.out, so that the test sees whether it still runs.
FORK_CHAIN = """
import os
out = os.open(os.path.expanduser("~/chain.out"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
hops = 0
while True:
    hops += 1
    if hops % 100 == 0:
        os.write(out, b".")
    try:
        if os.fork() > 0:
            os._exit(0)
    except OSError:
        pass
"""

START_CHAIN = f"""
import subprocess, sys
subprocess.Popen([sys.executable, "-c", {FORK_CHAIN!r}], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
"""


@pytest.fixture(scope="module")
def owner(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    user = _make_user(ctx, app, "procowner", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def workspace(ctx: AppContext, owner: TestUser, supervisor: Any) -> Iterator[dict[str, Any]]:
    provider: Any = ctx.providers.workspaces
    default, provider.max_processes = provider.max_processes, LIMIT
    project = owner.client.post(
        "/api/v1/projects", json={"name": "Processer", "description": "", "branchName": "main"}
    )
    assert project.status_code == 201, project.text
    created = owner.client.post(
        "/api/v1/workspaces",
        json={
            "name": "Gränser",
            "templateId": "python",
            "projectId": project.json()["id"],
            "branchId": "main",
        },
    )
    assert created.status_code == 201, created.text
    try:
        yield wait_state(owner, created.json()["id"], "running")
    finally:
        provider.max_processes = default
        uid = provider.uids.ours(created.json()["id"])
        if uid is not None:
            kill_user(uid, timeout=5)  # whatever a failed test left running


def _uid(ctx: AppContext, workspace_id: str) -> int:
    uid = ctx.providers.workspaces.uids.ours(workspace_id)  # type: ignore[attr-defined]
    assert isinstance(uid, int)
    return uid


def test_a_fork_bomb_stops_at_the_limit_and_the_kernel_survives(
    live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    kernel = Kernel(live_url, workspace["id"], owner.headers)
    try:
        result = kernel.execute(FORK_BOMB, timeout=180)
        assert result.error is None, result
        bomb = json.loads(result.stdout)
        assert bomb["error"] == "BlockingIOError", bomb  # EAGAIN: RLIMIT_NPROC
        assert bomb["tasks"] <= LIMIT, bomb
        assert bomb["forked"] > LIMIT // 2, bomb  # it was the limit that stopped it
        assert kernel.execute("print('still here')").stdout.strip() == "still here"
    finally:
        kernel.close()
    base = f"{live_url}{ws_path(workspace)}"
    terminal = httpx.post(base + "api/terminals", headers=owner.headers)  # JupyterLab forks
    assert terminal.status_code == 200, terminal.text
    httpx.delete(base + f"api/terminals/{terminal.json()['name']}", headers=owner.headers)


def test_stop_leaves_no_process_of_the_workspace_not_even_a_fork_chain(
    ctx: AppContext, live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    wid = workspace["id"]
    uid = _uid(ctx, wid)
    out = ctx.providers.workspaces.root / wid / "home" / "chain.out"  # type: ignore[attr-defined]
    kernel = Kernel(live_url, wid, owner.headers)
    try:
        assert kernel.execute(START_CHAIN).error is None
        _wait_growing(out)
    finally:
        kernel.socket.close()
    assert owner.client.post(f"/api/v1/workspaces/{wid}/stop").status_code == 202
    wait_state(owner, wid, "stopped", timeout=60)
    deadline = time.monotonic() + 5
    while (growing := _grows(out)) or processes_of(uid):
        assert time.monotonic() < deadline, (
            f"still running after stop: chain {'alive' if growing else 'gone'}, "
            f"pids {processes_of(uid)[:10]}"
        )


def _grows(path: Path) -> bool:
    before = path.stat().st_size
    time.sleep(0.5)
    return path.stat().st_size != before


def _wait_growing(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not (path.exists() and _grows(path)):
        assert time.monotonic() < deadline, "the fork chain does not run"
        time.sleep(0.1)
