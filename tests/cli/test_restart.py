"""A restart in place (``balsam restart``, ``kill -HUP``) keeps workspaces running: a
kernel keeps its variables across it, and its WebSocket through the proxy opens again,
as JupyterLab reconnects in a browser. Ctrl-C/SIGTERM still stops everything."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from balsam.providers.workspaces.unix import runs_server
from tests.cli.test_cli import balsam_command, serving, up_environment
from tests.fixtures.workspaces import Kernel

PASSWORD = "Restart-password-7"


def test_a_restart_in_place_keeps_workspaces_and_their_kernels(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = up_environment(f"sqlite:///{tmp_path_factory.mktemp('db') / 'balsam.db'}")
    env["BALSAM_ADMIN_PASSWORD"] = PASSWORD
    data = tmp_path_factory.mktemp("restart") / "data"
    with serving(env, data) as up:
        token = httpx.post(
            f"{up.url}/api/v1/users/me/tokens", auth=("admin", PASSWORD), json={"name": "t"}
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        api = httpx.Client(base_url=f"{up.url}/api/v1", headers=headers, timeout=60)
        project = api.post("/projects", json={"name": "Omstart", "branchName": "main"}).json()
        wid = api.post("/workspaces", json={
            "name": "Håller", "templateId": "python", "projectId": project["id"],
            "branchId": "main"}).json()["id"]  # fmt: skip
        deadline = time.monotonic() + 600  # the template's environment may be built first
        while (state := api.get(f"/workspaces/{wid}").json())["state"] != "running":
            assert state["state"] != "failed" and time.monotonic() < deadline, state
            time.sleep(0.5)
        server_pid = _server_pid(data, wid)
        # Bearer-token requests are served under any host name of the workspace port.
        kernel = Kernel(f"http://127.0.0.1:{env['BALSAM_WORKSPACES__PORT']}", wid, headers)
        assert kernel.execute("kept = 41 + 1").error is None
        kernel.socket.close()

        done = subprocess.run(
            [*balsam_command(), "restart", "--data-dir", str(data), "--timeout", "240"],
            env={**env, "BALSAM_PORT": up.url.rsplit(":", 1)[1]},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "restarted and ready" in done.stdout
        assert up.process.poll() is None  # the same process, executed again
        assert "Balsam restarts (workspaces keep running)" in up.stderr

        assert runs_server(server_pid, wid)  # never stopped
        assert api.get(f"/workspaces/{wid}").json()["state"] == "running"
        kernel.attach()
        try:
            again = kernel.execute("print(kept)")
        finally:
            kernel.close()
        assert again.error is None and again.stdout.strip() == "42", again
        api.delete(f"/workspaces/{wid}")


def test_restart_without_a_running_balsam_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALSAM_")}
    done = subprocess.run(
        [*balsam_command(), "restart", "--data-dir", str(tmp_path / "none")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "no balsam up has run" in done.stderr


def _server_pid(data: Path, workspace_id: str) -> int:
    return int(json.loads((data / "workspaces" / workspace_id / "run.json").read_text())["pid"])
