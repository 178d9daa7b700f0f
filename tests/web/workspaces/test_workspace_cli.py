"""`balsam data` inside a real workspace, without a login: the workspace's own key
reaches its project's data (ls, cp both ways, preview, rm, restorable), nothing of
another project's; the script cannot be changed by the workspace, nor be made to load
a module the user planted (it runs with -I)."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from balsam.context import AppContext
from tests.fixtures.app import TestUser, _make_user
from tests.fixtures.workspaces import Kernel, wait_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspaces run under their own uid only as root"
)

#: Run in the kernel: each command's exit status, output and errors.
RUN = r"""
import json, os, subprocess
def balsam(*args, env=None):
    done = subprocess.run(["balsam", "data", *args], capture_output=True, text=True,
                          env=env, timeout=120)
    return [done.returncode, done.stdout, done.stderr]
"""


@pytest.fixture(scope="module")
def cli_user(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    user = _make_user(ctx, app, f"cli{secrets.token_hex(3)}", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def workspace(
    live_url: str, cli_user: TestUser, supervisor: Any
) -> Iterator[tuple[dict[str, Any], Kernel]]:
    created = cli_user.client.post(
        "/api/v1/projects",
        json={"name": f"Kommandorad {secrets.token_hex(3)}", "branchName": "main"},
    )
    assert created.status_code == 201, created.text
    made = cli_user.client.post(
        "/api/v1/workspaces",
        json={"name": "cli", "templateId": "python", "projectId": created.json()["id"],
              "branchId": "main"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    running = wait_state(cli_user, made.json()["id"], "running")
    kernel = Kernel(live_url, running["id"], cli_user.headers)
    result = kernel.execute(RUN + "print('ready')")
    assert result.error is None, result
    yield created.json(), kernel
    kernel.close()


def _run(kernel: Kernel, code: str) -> Any:
    result = kernel.execute(code)
    assert result.error is None, result
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_workspace_reaches_its_projects_data_without_a_login(
    cli_user: TestUser, workspace: tuple[dict[str, Any], Kernel]
) -> None:
    project, kernel = workspace
    got = _run(
        kernel,
        "import pathlib\n"
        "pathlib.Path('tal.csv').write_text('år;värde\\n2024;1\\n2025;2\\n')\n"
        "out = {'up': balsam('cp', 'tal.csv', ':main/ut/tal.csv'),\n"
        "       'ls': balsam('ls', ':main/ut/'),\n"
        "       'preview': balsam('preview', ':main/ut/tal.csv'),\n"
        "       'down': balsam('cp', ':main/ut/tal.csv', '-'),\n"
        f"       'named': balsam('ls', '{project['id']}:main/'),\n"
        "       'other': balsam('ls', 'someone-elses:main/'),\n"
        "       'missing': balsam('rm', ':main/ut/saknas.csv'),\n"
        "       'rm': balsam('rm', ':main/ut/tal.csv')}\n"
        "print(json.dumps(out))",
    )
    assert got["up"][0] == 0, got["up"]
    assert got["ls"][0] == 0 and "main/ut/tal.csv" in got["ls"][1]
    assert got["preview"][0] == 0 and got["preview"][1].splitlines()[:2] == ["år\tvärde", "2024\t1"]
    assert got["down"] == [0, "år;värde\n2024;1\n2025;2\n", ""]
    assert got["named"][0] == 0 and "main/ut/" in got["named"][1]
    assert got["other"][0] == 1 and "own project's data only" in got["other"][2]
    assert got["missing"][0] == 1 and "No object" in got["missing"][2]
    assert got["rm"][0] == 0
    # Deleted the way the portal deletes: restorable from its versions.
    versions = cli_user.client.get(
        f"/api/v1/projects/{project['id']}/data/main/ut/tal.csv", params={"versions": "true"}
    ).json()["versions"]
    assert [v["deleted"] for v in versions] == [True, False]


def test_the_script_is_the_platforms_and_ignores_planted_modules(
    workspace: tuple[dict[str, Any], Kernel],
) -> None:
    _, kernel = workspace
    got = _run(
        kernel,
        "import shutil, pathlib, tempfile\n"
        "script = shutil.which('balsam')\n"
        "plant = pathlib.Path(tempfile.mkdtemp(dir=pathlib.Path.home()))\n"
        "marker = plant / 'ran'\n"
        "for name in ('boto3.py', 'argparse.py', 'csv.py'):\n"
        "    (plant / name).write_text(f'open({str(marker)!r}, \"w\").close()\\n')\n"
        "env = dict(os.environ, PYTHONPATH=str(plant), PYTHONSTARTUP=str(plant / 'csv.py'))\n"
        "here = os.getcwd(); os.chdir(plant)\n"
        "try:\n"
        "    listed = balsam('ls', ':', env=env)\n"
        "finally:\n"
        "    os.chdir(here)\n"
        "print(json.dumps({'script': script, 'writable': os.access(script, os.W_OK),\n"
        "                  'dir_writable': os.access(os.path.dirname(script), os.W_OK),\n"
        "                  'listed': listed[0], 'planted_ran': marker.exists()}))",
    )
    assert got["script"].endswith("/bin/balsam") and "/home/" not in got["script"]
    assert not got["writable"] and not got["dir_writable"]
    assert got["listed"] == 0 and not got["planted_ran"], got


def test_a_terminal_has_the_environments_python_and_balsam(
    cli_user: TestUser, workspace: tuple[dict[str, Any], Kernel]
) -> None:
    """JupyterLab's terminal runs an interactive shell with the workspace's PATH (a login
    shell would take the machine's from /etc/profile)."""
    _, kernel = workspace
    base = kernel.base
    created = httpx.post(base + "api/terminals", headers=cli_user.headers)
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    url = base.replace("http://", "ws://") + f"terminals/websocket/{name}"
    output = ""
    try:
        with connect(url, additional_headers=cli_user.headers, open_timeout=30) as terminal:
            terminal.send(json.dumps(["stdin", "balsam data ls : && python -c 'print(6*7)'\r"]))
            deadline = time.monotonic() + 60
            while "\n42" not in output and time.monotonic() < deadline:
                message = json.loads(terminal.recv(timeout=60))
                if message[0] == "stdout":
                    output += message[1]
    finally:
        httpx.delete(base + f"api/terminals/{name}", headers=cli_user.headers)
    assert "main/" in output and "\n42" in output, output
