"""What every provider needs to know about a JupyterLab server: its command
line, and how to ask it for its status and its kernel and terminal activity."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from balsam.providers.workspaces import runtime
from balsam.providers.workspaces.base import Endpoint

#: The most Balsam reads of an answer of a workspace's server to its own requests.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: JupyterLab settings every workspace starts with (its ``overrides.json``): an offline
#: installation must not ask to fetch Jupyter's news or look for updates (``news_url``
#: None on the command line does not stop the question).
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    }
}


def write_lab_overrides(env_path: Path) -> None:
    """Write :data:`LAB_OVERRIDES` where the environment's JupyterLab reads them
    (``share/jupyter/lab/settings/overrides.json``; readable by every workspace,
    writable by Balsam alone); a no-op when they are there already."""
    target = env_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    text = json.dumps(LAB_OVERRIDES, indent=2) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)  # whatever the umask: every workspace reads it
    if target.is_file() and target.read_text() == text:
        return
    partial = target.with_name(f".overrides-{time.monotonic_ns()}.json")
    partial.write_text(text)
    partial.chmod(0o644)
    partial.replace(target)  # atomic: a workspace starting meanwhile reads one or the other


def stop_when_idle(idle_timeout_minutes: int) -> int:
    """Seconds a server waits, idle, before stopping itself: twice the supervisor's idle
    timeout and an hour at least, so the supervisor always acts first."""
    return max(2 * idle_timeout_minutes * 60, 3600)


def server_command(
    env_path: Path,
    base_url: str,
    sock: Path,
    root_dir: Path,
    *,
    start_in: str,
    allow_root: bool = False,
    stop_when_idle_seconds: int = 7200,
    kernels: Sequence[str] | None = None,
) -> list[str]:
    """``jupyter lab`` on the unix socket ``sock`` (mode 0600) under ``base_url``, its
    kernels on IPC: no TCP port at all. Kernel sockets go to ``JUPYTER_RUNTIME_DIR``
    (set it to ``sock``'s folder). The token comes from the ``JUPYTER_TOKEN``
    environment variable, never from the command line. The file browser opens in
    ``start_in`` (a folder under ``root_dir`` that exists: the project's clone).

    Balsam's supervisor stops an idle workspace and keeps its home; a server outlives
    ``balsam up`` on purpose (re-attached, or stopped, at the next start). Should Balsam
    not come back, kernels idle for ``stop_when_idle_seconds`` with no browser attached
    are culled by the server itself (see :func:`stop_when_idle`): what keeps running
    is the idle server. (Its own shutdown when idle is not used: with
    ``preferred_dir`` set, JupyterLab's check for it never runs.)

    ``kernels``: the only kernel specs offered (Balsam's own, written for the
    environment); other specs on the machine — e.g. Debian's IRkernel spec, which R
    starts without ``--no-restore`` — are not."""
    fallback = stop_when_idle_seconds
    command = [
        str(env_path / "bin" / "jupyter-lab"),
        "--no-browser",
        f"--ServerApp.sock={sock}",
        "--ServerApp.sock_mode=0600",
        "--KernelManager.transport=ipc",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ContentsManager.preferred_dir={start_in}",
        "--ServerApp.allow_remote_access=False",
        # The fallback only: the supervisor culls idle workspaces first.
        f"--MappingKernelManager.cull_idle_timeout={fallback}",
        "--MappingKernelManager.cull_interval=300",
        # None (not ""): no news fetched, and no prompt asking whether to fetch them.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # Terminals as an interactive shell, not a login shell: /etc/profile would put
        # the machine's PATH back, without the environment's python or balsam.
        "--ServerApp.terminado_settings=shell_command=/bin/bash",
    ]
    for name in kernels or ():
        command += ["--KernelSpecManager.allowed_kernelspecs", name]
    if allow_root:
        command.append("--allow-root")
    return command


def write_kernel_spec(env_path: Path, folder: Path) -> None:
    """The environment's own Python kernel spec, under ``folder/kernels/python3``, that
    also loads :mod:`.kernel_config` (copied to ``folder``): its subprocess-output pipe
    then uses IPC like its channels. Python runs with ``-P``: nothing is imported from
    the notebook's folder while the kernel starts. Point ``JUPYTER_PATH`` at ``folder``; the files
    are Balsam's and readable by the workspace (0644 in 0755 folders)."""
    original = env_path / "share" / "jupyter" / "kernels" / "python3"
    spec_dir = folder / "kernels" / "python3"
    if not (original / "kernel.json").exists():  # a template without ipykernel
        return
    spec_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    for made in (folder, folder / "kernels", spec_dir):
        made.chmod(0o755)
    config = folder / "kernel_config.py"
    shutil.copyfile(Path(__file__).with_name("kernel_config.py"), config)
    config.chmod(0o644)
    spec = json.loads((original / "kernel.json").read_text())
    argv = list(spec["argv"])
    if argv[1:3] == ["-m", "ipykernel_launcher"]:
        # -P: the notebook's folder is not searched for ipykernel_launcher and what the
        # kernel imports while starting (a project member could commit such a file);
        # kernel_config puts the folder back once the kernel has started.
        argv.insert(1, "-P")
    spec["argv"] = [*argv, f"--config={config}"]
    for logo in original.glob("logo-*"):
        shutil.copyfile(logo, spec_dir / logo.name)
        (spec_dir / logo.name).chmod(0o644)
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    (spec_dir / "kernel.json").chmod(0o644)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a workspace's unix socket, refused unless its uid listens there."""

    def __init__(self, path: str, uid: int | None, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path, self._uid = path, uid

    def connect(self) -> None:
        self.sock = runtime.connect(self._path, self._uid, self.timeout or 5)


def get_json(endpoint: Endpoint, path: str, timeout: float = 5) -> object:
    """``GET <endpoint.url><path>`` with the server's token, decoded; raises
    ``OSError`` (no answer, or a socket not served by the workspace's user) or
    ``ValueError`` (not 200, not JSON)."""
    headers = {"Authorization": f"token {endpoint.token}"}
    if endpoint.socket is None:
        try:
            response = httpx.get(endpoint.url + path, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from exc
        if response.status_code != 200:
            raise ValueError(f"status {response.status_code}")
        return response.json()
    conn = _UnixConnection(endpoint.socket, endpoint.socket_uid, timeout)
    deadline = time.monotonic() + timeout
    try:
        conn.request("GET", urlsplit(endpoint.url).path + path, headers=headers)
        answer = conn.getresponse()
        body = _read_bounded(answer, deadline)
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()
    if answer.status != 200:
        raise ValueError(f"status {answer.status}")
    return json.loads(body)


def _read_bounded(answer: http.client.HTTPResponse, deadline: float) -> bytes:
    """The body, read within ``deadline`` and at most ``MAX_ANSWER_BYTES`` long: the
    server is the workspace user's code, and Balsam reads it as root."""
    body = b""
    while chunk := answer.read(65536):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise ValueError("answer too large")
        if time.monotonic() > deadline:
            raise OSError("answer too slow")
    return body


def _parse(value: object) -> datetime | None:
    """An activity time: naive ones are UTC, and none lies in the future (a server
    that claims so would never be culled)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return min(parsed, datetime.now(UTC))


def last_activity(endpoint: Endpoint, timeout: float = 5) -> datetime | None:
    """Latest activity of any kernel or terminal; None when there are none or the
    server does not answer. Browser page loads do not count: an open but unused
    JupyterLab tab is idle."""
    times: list[datetime] = []
    for path in ("api/kernels", "api/terminals"):
        try:
            items = get_json(endpoint, path, timeout)
        except OSError:
            return None
        except ValueError:
            continue
        if isinstance(items, list):
            times += [
                t
                for item in items
                if isinstance(item, dict) and (t := _parse(item.get("last_activity"))) is not None
            ]
    return max(times, default=None)
