"""A real workspace, end to end: JupyterLab through the proxy, a kernel over its
WebSocket, the project's data and repository from inside, stop and start."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from websockets.exceptions import InvalidHandshake
from websockets.sync.client import connect

from balsam.context import AppContext
from balsam.db.models import Workspace
from balsam.providers.workspaces import runtime
from balsam.providers.workspaces.jupyter import get_json
from balsam.providers.workspaces.local import LocalWorkspaceProvider
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import Kernel, wait_state, ws_path
from tests.web.api.v1.test_library_reuse import copy_url


@pytest.fixture(scope="module")
def owner(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    from tests.fixtures.app import _make_user

    user = _make_user(ctx, app, "wsowner", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def ws_project(owner: TestUser) -> dict[str, Any]:
    response = owner.client.post(
        "/api/v1/projects", json={"name": "Arbetsyta test", "description": "", "branchName": "main"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def workspace(owner: TestUser, ws_project: dict[str, Any], supervisor: Any) -> dict[str, Any]:
    response = owner.client.post(
        "/api/v1/workspaces",
        json={
            "name": "Min miljö",
            "templateId": "python",
            "projectId": ws_project["id"],
            "branchId": "main",
        },
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["state"] == "pending"
    # Absolute: a client on another origin opens it, not a page of its own.
    assert re.fullmatch(rf"http://testserver:\d+/workspaces/{created['id']}/", created["url"])
    return wait_state(owner, created["id"], "running")


@pytest.fixture(scope="module")
def kernel(live_url: str, owner: TestUser, workspace: dict[str, Any]) -> Iterator[Kernel]:
    k = Kernel(live_url, workspace["id"], owner.headers)
    yield k
    k.close()


def test_status_through_the_proxy(
    live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    response = httpx.get(f"{live_url}{ws_path(workspace)}api/status", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert "started" in response.json()


def test_kernel_runs_code(kernel: Kernel) -> None:
    result = kernel.execute("print(6 * 7)")
    assert result.error is None
    assert result.stdout.strip() == "42"


def test_the_server_token_never_reaches_the_browser(
    ctx: AppContext, live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    token = ctx.workspace_secrets.load(workspace["id"]).server_token  # type: ignore[union-attr]
    page = httpx.get(
        f"{live_url}{ws_path(workspace)}lab", headers=owner.headers, follow_redirects=True
    )
    assert page.status_code == 200
    assert "jupyter-config-data" in page.text
    assert token not in page.text
    assert token not in str(page.headers)


def test_jupyterlab_opens_in_the_projects_clone(
    live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    """The file browser starts in the repository, not the home above it (where the
    git panel has nothing to show)."""
    page = httpx.get(
        f"{live_url}{ws_path(workspace)}lab", headers=owner.headers, follow_redirects=True
    )
    found = re.search(r'"preferredPath": "([^"]*)"', page.text)
    assert found is not None, page.text[:2000]
    assert found.group(1).strip("/") == workspace["projectId"]
    # No prompt asking whether to fetch Jupyter's news (nothing is fetched either).
    assert re.search(r'"news": \{"disabled": true\}', page.text), page.text[:2000]


def test_environment_variables_and_lock(
    kernel: Kernel, ws_project: dict[str, Any], workspace: dict[str, Any]
) -> None:
    result = kernel.execute(
        "import os, json; print(json.dumps({k: os.environ.get(k) for k in ["
        "'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL', 'AWS_DEFAULT_REGION',"
        "'JUPYTERLAB_S3_ENDPOINT', 'JUPYTERLAB_S3_ACCESS_KEY_ID', "
        "'JUPYTERLAB_S3_SECRET_ACCESS_KEY', 'BALSAM_PROJECT', 'BALSAM_BRANCH', 'BALSAM_BUCKET',"
        "'BALSAM_DATA_PREFIX', 'BALSAM_STORAGE__ADMIN_SECRET_KEY']}))"
    )
    assert result.error is None, result
    env = json.loads(result.stdout)
    assert env["BALSAM_PROJECT"] == ws_project["id"]
    assert env["BALSAM_BRANCH"] == "main"
    assert env["BALSAM_DATA_PREFIX"] == "main/"
    assert env["BALSAM_BUCKET"]
    assert env["AWS_ACCESS_KEY_ID"] == env["JUPYTERLAB_S3_ACCESS_KEY_ID"]
    assert env["AWS_SECRET_ACCESS_KEY"] == env["JUPYTERLAB_S3_SECRET_ACCESS_KEY"]
    assert env["JUPYTERLAB_S3_ENDPOINT"] == env["AWS_ENDPOINT_URL"]
    assert env["BALSAM_STORAGE__ADMIN_SECRET_KEY"] is None  # nothing of Balsam's own leaks
    packages = workspace["environment"]["packages"]
    assert packages["jupyterlab"] == "4.6.6" and packages["pandas"] == "3.1.1"
    assert "python" in packages


S3_ROUND_TRIP = """
import boto3, os
s3 = boto3.client("s3")
bucket, prefix = os.environ["BALSAM_BUCKET"], os.environ["BALSAM_DATA_PREFIX"]
s3.put_object(Bucket=bucket, Key=prefix + "från-kärnan.txt", Body="hej".encode())
print(s3.get_object(Bucket=bucket, Key=prefix + "från-kärnan.txt")["Body"].read().decode())
"""


def test_project_data_from_the_kernel(
    kernel: Kernel, ctx: AppContext, ws_project: dict[str, Any]
) -> None:
    result = kernel.execute(S3_ROUND_TRIP)
    assert result.error is None, result
    assert result.stdout.strip() == "hej"
    assert "main/från-kärnan.txt" in ctx.providers.storage.list_keys(ws_project["bucket"])


def test_the_key_is_denied_on_another_projects_bucket(
    kernel: Kernel, project: dict[str, Any]
) -> None:
    result = kernel.execute(
        "import boto3\n"
        f"boto3.client('s3').put_object(Bucket={project['bucket']!r}, Key='x', Body=b'x')"
    )
    assert result.error is not None and "AccessDenied" in result.error


def test_git_commit_and_push_from_the_workspace(
    kernel: Kernel, ctx: AppContext, ws_project: dict[str, Any]
) -> None:
    pid = ws_project["id"]
    result = kernel.execute(
        "import subprocess, os\n"
        f"os.chdir(os.path.expanduser('~/{pid}'))\n"
        "open('analys.py', 'w').write('print(1)\\n')\n"
        "for cmd in (['git', 'add', 'analys.py'], ['git', 'commit', '-qm', 'Analys'],\n"
        "            ['git', 'push', '-q', 'origin', 'main'], ['git', 'pull', '-q']):\n"
        "    done = subprocess.run(cmd, capture_output=True, text=True)\n"
        "    assert done.returncode == 0, (cmd, done.stderr)\n"
        "print(subprocess.run(['git', 'log', '-1', '--format=%an <%ae>'],"
        " capture_output=True, text=True).stdout)"
    )
    assert result.error is None, result
    assert "wsowner" in result.stdout
    assert ctx.providers.git.read_file(pid, "main", "analys.py") == b"print(1)\n"


def test_git_pull_and_push_from_a_terminal(
    live_url: str,
    owner: TestUser,
    ctx: AppContext,
    workspace: dict[str, Any],
    ws_project: dict[str, Any],
) -> None:
    """A JupyterLab terminal, over its WebSocket through the proxy."""
    base = f"{live_url}{ws_path(workspace)}"
    created = httpx.post(base + "api/terminals", headers=owner.headers)
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    url = base.replace("http://", "ws://") + f"terminals/websocket/{name}"
    pid = ws_project["id"]
    script = (
        f"cd ~/{pid} && git pull -q && echo terminal > terminal.txt && "
        "git add terminal.txt && git commit -qm 'Från terminalen' && git push -q "
        "&& echo PUSHED-$((6*7))\r"
    )
    output = ""
    with connect(url, additional_headers=owner.headers, open_timeout=30) as terminal:
        terminal.send(json.dumps(["stdin", script]))
        deadline = time.monotonic() + 60
        while "PUSHED-42" not in output and time.monotonic() < deadline:
            message = json.loads(terminal.recv(timeout=60))
            if message[0] == "stdout":
                output += message[1]
    assert "PUSHED-42" in output, output
    httpx.delete(base + f"api/terminals/{name}", headers=owner.headers)
    assert ctx.providers.git.read_file(pid, "main", "terminal.txt") == b"terminal\n"


def test_git_token_stays_in_its_file(
    ctx: AppContext, workspace: dict[str, Any], kernel: Kernel
) -> None:
    secrets = ctx.workspace_secrets.load(workspace["id"])
    assert secrets is not None
    result = kernel.execute(
        "import os, subprocess, glob\n"
        "cfg = subprocess.run(['git', 'config', '--list', '--show-origin'], cwd=os.path.expanduser("
        "'~/' + os.environ['BALSAM_PROJECT']), capture_output=True, text=True).stdout\n"
        "print(cfg)\n"
        "print(oct(os.stat(os.path.expanduser('~/.git-credentials')).st_mode & 0o777))\n"
        "print(sorted(os.listdir(os.path.dirname(os.path.expanduser('~')))) "
        "if os.access(os.path.dirname(os.path.expanduser('~')), os.R_OK) else 'no-list')"
    )
    assert result.error is None, result
    assert secrets.git_token not in result.stdout  # not in any repository config or URL
    assert "0o600" in result.stdout
    assert "no-list" in result.stdout  # cannot list Balsam's workspace folder


def test_memory_limit_fails_the_allocation_not_the_platform(
    kernel: Kernel, live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    result = kernel.execute("x = bytearray(8 * 1024 ** 3)")  # over the template's 4 GiB
    assert result.error is not None and "MemoryError" in result.error
    assert kernel.execute("print('still here')").stdout.strip() == "still here"
    assert (
        httpx.get(f"{live_url}{ws_path(workspace)}api/status", headers=owner.headers).status_code
        == 200
    )


def _tcp_listeners(uid: int) -> set[int]:
    """Ports of TCP sockets in LISTEN state held by processes of ``uid``."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    ports = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        ports.add(inodes[target[8:-1]])
    return ports


@pytest.mark.skipif(os.geteuid() != 0, reason="workspaces run under their own uid only as root")
def test_no_tcp_listener_with_a_kernel_and_a_terminal(
    ctx: AppContext, live_url: str, owner: TestUser, kernel: Kernel, workspace: dict[str, Any]
) -> None:
    """The server is on a unix socket, the kernel's channels are IPC, and so is
    ipykernel's pipe for output of forked subprocesses (TCP by default, whatever the
    transport), which still carries a child's output to the notebook."""
    base = f"{live_url}{ws_path(workspace)}"
    terminal = httpx.post(base + "api/terminals", headers=owner.headers)
    assert terminal.status_code == 200, terminal.text
    try:
        forked = kernel.execute(
            "import multiprocessing as mp\n"
            "child = mp.get_context('fork').Process(target=print, args=('från barnet',))\n"
            "child.start(); child.join()"
        )
        assert forked.error is None, forked
        assert "från barnet" in forked.stdout
        endpoint = ctx.providers.workspaces.endpoint(workspace["id"])
        assert endpoint is not None and endpoint.socket_uid is not None
        assert _tcp_listeners(endpoint.socket_uid) == set()
    finally:
        httpx.delete(base + f"api/terminals/{terminal.json()['name']}", headers=owner.headers)


def test_kernels_talk_over_ipc_in_a_private_folder(
    ctx: AppContext, kernel: Kernel, workspace: dict[str, Any]
) -> None:
    endpoint = ctx.providers.workspaces.endpoint(workspace["id"])
    assert endpoint is not None and endpoint.socket is not None
    assert len(endpoint.socket) <= runtime.MAX_SOCKET_PATH
    folder = Path(endpoint.socket).parent
    info = json.loads((folder / f"kernel-{kernel.id}.json").read_text())
    assert info["transport"] == "ipc"
    assert info["ip"].startswith(str(folder) + "/")
    assert folder.stat().st_mode & 0o777 == 0o700  # Jupyter adds the sticky bit
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o711
    result = kernel.execute("import os; print(os.environ['JUPYTER_RUNTIME_DIR'])")
    assert result.stdout.strip() == str(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="workspaces run under their own uid only as root")
def test_another_uid_cannot_open_the_server_socket(
    ctx: AppContext, workspace: dict[str, Any]
) -> None:
    endpoint = ctx.providers.workspaces.endpoint(workspace["id"])
    assert endpoint is not None and endpoint.socket is not None
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('denied')\n"
        "else:\n    print('CONNECTED')"
    )
    stranger = ctx.settings.workspaces.uid_base - 3  # no process of this platform's
    done = subprocess.run(
        ["/usr/bin/python3", "-c", probe, endpoint.socket],
        user=stranger,
        group=stranger,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.strip() == "denied", (done.stdout, done.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="workspaces run under their own uid only as root")
def test_clients_refuse_a_socket_swapped_for_one_of_roots(
    ctx: AppContext,
    app: Any,
    live_url: str,
    owner: TestUser,
    kernel: Kernel,
    workspace: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The workspace's user owns its runtime folder and can replace its socket with a
    link: Balsam (root) must not then talk to whatever root-only socket it names."""
    endpoint = ctx.providers.workspaces.endpoint(workspace["id"])
    assert endpoint is not None and endpoint.socket is not None
    roots = socket.socket(socket.AF_UNIX)
    roots.bind(str(tmp_path / "root.sock"))
    roots.listen()
    moved = endpoint.socket + ".real"
    os.rename(endpoint.socket, moved)
    os.symlink(tmp_path / "root.sock", endpoint.socket)
    try:
        with pytest.raises(runtime.UnexpectedPeer):  # readiness and activity checks
            get_json(endpoint, "api/status")
        app.state.proxy_clients = None  # no kept-alive connection to the real server
        response = httpx.get(f"{live_url}{ws_path(workspace)}api/status", headers=owner.headers)
        assert response.status_code == 502, response.text
        with pytest.raises(InvalidHandshake):  # a WebSocket always opens a new connection
            connect(
                f"{live_url.replace('http', 'ws')}{ws_path(workspace)}api/kernels/"
                f"{kernel.id}/channels",
                additional_headers=owner.headers,
                open_timeout=10,
            )
        roots.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while True:  # the proxy hung up on root's socket before sending a byte
                conn, _ = roots.accept()
                with conn:
                    assert conn.recv(1024) == b""
    finally:
        os.unlink(endpoint.socket)
        os.rename(moved, endpoint.socket)
        roots.close()
    assert (
        httpx.get(f"{live_url}{ws_path(workspace)}api/status", headers=owner.headers).status_code
        == 200
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="workspaces run under their own uid only as root")
def test_workspace_cannot_read_balsams_data(kernel: Kernel, ctx: AppContext) -> None:
    data_dir = ctx.settings.data_dir.resolve()
    secrets_dir = ctx.workspace_secrets.root
    targets = [
        data_dir / "git",
        secrets_dir,
        data_dir / "workspaces",
        *(p for p in [data_dir / "balsam.db"] if p.exists()),
    ]
    code = "\n".join(
        [
            "import os",
            "for path in %r:" % [str(t) for t in targets],
            "    try:",
            "        os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read(1)",
            "        print('READ', path)",
            "    except PermissionError:",
            "        print('denied', path)",
        ]
    )
    result = kernel.execute(code)
    assert result.error is None, result
    assert "READ" not in result.stdout, result.stdout
    assert result.stdout.count("denied") == len(targets)


def test_scb_minio_notebook_runs_in_the_workspace(
    kernel: Kernel,
    ctx: AppContext,
    owner: TestUser,
    ws_project: dict[str, Any],
    scb_library: dict[str, Any],
) -> None:
    """SCB's own notebook (minio client, object tags and metadata) runs unmodified
    but for the bucket name, in the workspace's environment."""
    pid, resource = ws_project["id"], "Resources/Datalagring - Minio-s3"
    copied = owner.client.put(copy_url(pid, scb_library["id"], resource))
    assert copied.status_code == 200, copied.text
    bucket = ws_project["bucket"]
    result = kernel.execute(
        f"""
import json, os, subprocess, sys
repo = os.path.expanduser('~/{pid}')
subprocess.run(['git', 'pull', '-q'], cwd=repo, check=True)
folder = os.path.join(repo, {resource!r})
nb = json.load(open(os.path.join(folder, 'Python-S3.ipynb')))
for cell in nb['cells']:
    src = ''.join(cell['source']).replace('XXXX', {bucket!r})
    cell['source'] = src.replace('demo-funktionalitet', {bucket!r})
json.dump(nb, open(os.path.join(folder, 'run.ipynb'), 'w'))
done = subprocess.run([sys.executable, '-m', 'nbconvert', '--to', 'notebook', '--execute',
                       '--output', 'done.ipynb', 'run.ipynb'], cwd=folder,
                      capture_output=True, text=True)
assert done.returncode == 0, done.stderr[-2000:]
out = json.load(open(os.path.join(folder, 'done.ipynb')))
print(''.join(''.join(o.get('text', '')) for c in out['cells'] for o in c.get('outputs', [])))
""",
        timeout=180,
    )
    assert result.error is None, result
    assert "Contents of filtest.txt" in result.stdout
    s3 = ctx.providers.storage._s3  # type: ignore[attr-defined]
    tags = s3.get_object_tagging(Bucket=bucket, Key="filtest.txt")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"color": "red", "size": "small"}
    meta = s3.head_object(Bucket=bucket, Key="filtest.txt")["Metadata"]
    assert meta == {"cat": "meow", "dog": "woof", "horse": "neigh"}


def _sysv_of(table: str, uid: int) -> list[str]:
    """System V IPC objects of ``uid`` in ``/proc/sysvipc/<table>``."""
    owner = {"shm": 7, "sem": 4, "msg": 7}[table]
    lines = Path(f"/proc/sysvipc/{table}").read_text().splitlines()[1:]
    return [line for line in lines if line.split()[owner] == str(uid)]


def test_idle_workspace_is_culled_and_starts_again_with_its_home(
    ctx: AppContext, live_url: str, owner: TestUser, kernel: Kernel, workspace: dict[str, Any]
) -> None:
    wid = workspace["id"]
    assert (
        kernel.execute(
            "open(__import__('os').path.expanduser('~/kvar.txt'), 'w').write('kvar')"
        ).error
        is None
    )
    # Shared memory, the folders every user may write to and System V IPC objects
    # outlive a workspace's processes: its stop removes them.
    leftovers = [Path(f"{folder}/left-{wid}") for folder in ("/dev/shm", "/tmp", "/var/tmp")]
    leftovers += [Path(f"/run/lock/left-{wid}")] if os.access("/run/lock", os.W_OK) else []
    code = "".join(f"open({str(p)!r}, 'wb').write(b'x' * 1048576)\n" for p in leftovers)
    code += "import subprocess\n" + "".join(
        f"subprocess.run({args!r}, check=True)\n"
        for args in (["ipcmk", "-S", "4"], ["ipcmk", "-Q"], ["ipcmk", "-M", "4096"])
    )
    assert kernel.execute(code).error is None
    assert all(p.exists() for p in leftovers)
    endpoint = ctx.providers.workspaces.endpoint(wid)
    uid = endpoint.socket_uid if endpoint else None
    if uid is not None:
        assert {t for t in ("shm", "sem", "msg") if _sysv_of(t, uid)} == {"shm", "sem", "msg"}
    kernel.close()
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(Workspace)
            .where(Workspace.id == wid)
            .values(started_at=long_ago, last_activity_at=long_ago)
        )
    ctx.supervisor.check()
    body = wait_state(owner, wid, "stopped", timeout=30)
    assert "without kernel or terminal activity" in body["stateReason"]
    if os.geteuid() == 0:  # a uid of its own: what it owns is known to be its
        assert not any(p.exists() for p in leftovers)
        assert uid is not None and not any(_sysv_of(t, uid) for t in ("shm", "sem", "msg"))
    assert (
        httpx.get(f"{live_url}/workspaces/{wid}/api/status", headers=owner.headers).status_code
        == 503
    )
    assert owner.client.post(f"/api/v1/workspaces/{wid}/start").status_code == 202
    wait_state(owner, wid, "running", timeout=120)
    again = Kernel(live_url, wid, owner.headers)
    try:
        assert (
            again.execute(
                "print(open(__import__('os').path.expanduser('~/kvar.txt')).read())"
            ).stdout.strip()
            == "kvar"
        )
    finally:
        again.close()


def test_a_restarted_control_plane_finds_running_servers(
    ctx: AppContext, owner: TestUser, workspace: dict[str, Any]
) -> None:
    wid = workspace["id"]
    wait_state(owner, wid, "running", timeout=120)
    provider = ctx.providers.workspaces
    fresh = LocalWorkspaceProvider(
        provider.root,
        provider.environments,  # type: ignore[attr-defined]
        uid_base=provider.uid_base,
    )  # type: ignore[attr-defined]
    assert fresh.running() == [wid] or wid in fresh.running()
    endpoint = fresh.endpoint(wid)
    assert endpoint is not None and endpoint.socket is not None
    assert "started" in get_json(endpoint, "api/status")  # type: ignore[operator]


def test_a_dead_server_is_marked_and_found_stopped_after_restart(
    ctx: AppContext, owner: TestUser, workspace: dict[str, Any]
) -> None:
    wid = workspace["id"]
    pid = json.loads(
        (ctx.providers.workspaces.root / wid / "run.json")  # type: ignore[attr-defined]
        .read_text()
    )["pid"]
    os.killpg(pid, signal.SIGKILL)
    for _ in range(100):  # the kill lands asynchronously
        ctx.supervisor.check()
        if owner.client.get(f"/api/v1/workspaces/{wid}").json()["state"] == "failed":
            break
        time.sleep(0.1)
    body = wait_state(owner, wid, "failed", timeout=1)
    assert "JupyterLab" in body["stateReason"]
    with ctx.sessions() as session, session.begin():  # as if Balsam died meanwhile
        session.execute(update(Workspace).where(Workspace.id == wid).values(state="running"))
    ctx.supervisor.reattach()
    assert wait_state(owner, wid, "stopped", timeout=10)["stateReason"].startswith("Its server")
