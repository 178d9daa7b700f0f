"""Runs a crash interrupted are failed, their keys revoked and their records written
(balsam.domain.runs.recovery), at the next start."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from balsam.context import AppContext
from balsam.db.models import Run, RunNode
from balsam.domain.runs.execution import INTERRUPTED, prefix_of
from balsam.domain.runs.recovery import fail_interrupted


def _running(ctx: AppContext, project: dict[str, Any], run_id: str, process: str) -> str:
    storage = ctx.providers.storage
    key = storage.create_key(
        project["bucket"], label=f"run-{run_id}", write_prefix=prefix_of(run_id)
    )
    with ctx.sessions() as session, session.begin():
        session.add(Run(id=run_id, project_id=project["id"], branch="main", path="s.py",
                        kind="script", commit="0" * 40, dirty=False, parameters={},
                        template_id="python", environment="python-x", state="running",
                        created_by="alice", request_id="", cancel_requested=False,
                        process=process, access_key=key.access_key))  # fmt: skip
        session.add(RunNode(run_id=run_id, id="main", key="main", label="s.py", kind="python",
                            filename="s.py", position=0, state="running"))  # fmt: skip
    return key.access_key


def test_a_run_whose_process_died_fails_and_loses_its_key(
    ctx: AppContext, project: dict[str, Any]
) -> None:
    from balsam.domain.journal import this_process

    dead_key = _running(ctx, project, "deadbeef00000001", f"{socket.gethostname()}:999999999:1")
    live_key = _running(ctx, project, "deadbeef00000002", this_process())
    assert fail_interrupted(ctx) >= 1
    with ctx.sessions() as session:
        dead = session.get(Run, "deadbeef00000001")
        live = session.get(Run, "deadbeef00000002")
        assert dead is not None and live is not None
        assert dead.state == "failed" and dead.error == INTERRUPTED
        assert dead.access_key is None and dead.record is not None
        assert [n.state for n in dead.nodes] == ["failed"]
        assert json.loads(dead.record)["run"]["state"] == "failed"
        assert live.state == "running" and live.access_key == live_key  # its process lives
    assert not ctx.providers.storage.key_exists(dead_key)
    assert ctx.providers.storage.key_exists(live_key)
    ctx.providers.storage.revoke_key(live_key)


def test_what_a_dead_balsams_run_left_running_or_on_disk_is_removed(
    ctx: AppContext, project: dict[str, Any]
) -> None:
    import os
    import subprocess

    from balsam.providers.workspaces.local import LocalWorkspaceProvider
    from balsam.providers.workspaces.local_runs import folder_id

    provider = ctx.providers.workspaces
    if not isinstance(provider, LocalWorkspaceProvider) or os.geteuid() != 0:
        pytest.skip("runs get a uid of their own only when Balsam is root")
    run_id = "deadbeef00000003"
    home = provider.root / folder_id(run_id) / "home"
    home.mkdir(parents=True)
    uid = provider.uid_for(folder_id(run_id), home)
    assert uid is not None
    os.chown(home, uid, uid)
    # What the run's code detached before its Balsam died.
    left = subprocess.Popen(["sleep", "600"], user=uid, group=uid, extra_groups=[],
                            start_new_session=True)  # fmt: skip
    _running(ctx, project, run_id, f"{socket.gethostname()}:999999999:1")
    assert fail_interrupted(ctx) >= 1
    assert left.wait(timeout=10) != 0  # killed
    assert not (provider.root / folder_id(run_id)).exists()
    assert provider.uids.ours(folder_id(run_id)) is None  # the uid is released
