"""What every provider needs to know about a JupyterLab server: its command
line, and how to read its kernel and terminal activity."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

import httpx

from balsam.providers.workspaces.base import Endpoint


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(env_path: Path, base_url: str, port: int, root_dir: Path, *,
                   allow_root: bool = False) -> list[str]:
    """``jupyter lab`` bound to loopback under ``base_url``. The token comes from the
    ``JUPYTER_TOKEN`` environment variable, never from the command line."""
    command = [
        str(env_path / "bin" / "jupyter-lab"), "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url}", f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.allow_remote_access=False",
        # Balsam culls idle workspaces itself and keeps their homes.
        "--ServerApp.shutdown_no_activity_timeout=0",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if allow_root:
        command.append("--allow-root")
    return command


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def last_activity(endpoint: Endpoint, timeout: float = 5) -> datetime | None:
    """Latest activity of any kernel or terminal; None when there are none or the
    server does not answer. Browser page loads do not count: an open but unused
    JupyterLab tab is idle."""
    headers = {"Authorization": f"token {endpoint.token}"}
    times: list[datetime] = []
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            for path in ("api/kernels", "api/terminals"):
                response = client.get(endpoint.url + path)
                if response.is_success:
                    times += [t for item in response.json()
                              if (t := _parse(item.get("last_activity"))) is not None]
    except (httpx.HTTPError, ValueError):
        return None
    return max(times, default=None)
