"""Local workspace provider: one JupyterLab process per workspace on this machine.

Each server binds to loopback on a free port and is reached only through
Balsam's proxy, which presents the server's token; the token never reaches the
browser. Layout under ``root`` (``<data_dir>/workspaces``)::

    <id>/            0711, Balsam's
    <id>/home/       0700, the workspace's own user: the home, kept across stops
    <id>/run.json    0600, Balsam's: pid, port and token of the running server
    <id>/server.log  0600, Balsam's: the server's output
    <id>/uid         the numeric user id the workspace runs as (root only)

When Balsam runs as root, every workspace runs under its own numeric user id,
so it can read neither other workspaces' homes nor Balsam's data. Otherwise
workspaces run as Balsam's user (one trusted user on a laptop).

Memory is limited per process with ``RLIMIT_AS`` (inherited by kernels and
terminals): an allocation over the limit fails inside the kernel with a
``MemoryError`` and the platform is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from balsam.providers.workspaces.base import (
    Endpoint,
    EnvironmentSpec,
    Probe,
    Progress,
    WorkspaceProvider,
    WorkspaceSpec,
    WorkspaceStartError,
)
from balsam.providers.workspaces.environments import EnvironmentBuilder
from balsam.providers.workspaces.jupyter import free_port, last_activity, server_command
from balsam.providers.workspaces.unix import (
    as_user,
    kill_user,
    runs_server,
    share_with_workspaces,
    signal_group,
    uids_in_use,
    wait_gone,
    write_private,
)

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class LocalWorkspaceProvider(WorkspaceProvider):
    def __init__(self, root: Path, environments: EnvironmentBuilder, *, uid_base: int = 200_000,
                 start_timeout: float = 180) -> None:
        self.root = root
        self.environments = environments
        self.uid_base = uid_base
        self.start_timeout = start_timeout
        self.as_root = os.geteuid() == 0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._uid_lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)
        environments.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            share_with_workspaces(root, environments.root)

    # -- layout -------------------------------------------------------------------------

    def _dir(self, workspace_id: str) -> Path:
        if not _ID.match(workspace_id):
            raise ValueError(f"invalid workspace id {workspace_id!r}")
        return self.root / workspace_id

    def _run_info(self, workspace_id: str) -> dict[str, object] | None:
        try:
            data: dict[str, object] = json.loads((self._dir(workspace_id) / "run.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def _uid(self, workspace_id: str) -> int | None:
        """The workspace's own user id (allocated once, never reused), or None when
        Balsam is not root and workspaces run as its own user."""
        if not self.as_root:
            return None
        file = self._dir(workspace_id) / "uid"
        if file.exists():
            return int(file.read_text())
        with self._uid_lock:
            counter = self.root / ".next-uid"
            uid = int(counter.read_text()) if counter.exists() else self.uid_base
            busy = uids_in_use()  # e.g. another Balsam on this machine
            while uid in busy:
                uid += 1
            counter.write_text(str(uid + 1))
            file.write_text(str(uid))
        return uid

    # -- home ---------------------------------------------------------------------------

    def _prepare_home(self, spec: WorkspaceSpec, uid: int | None) -> Path:
        home = self._dir(spec.workspace_id) / "home"
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        if uid is not None:
            os.chown(home, uid, uid)
        url = urlsplit(spec.clone_url)
        secrets = spec.secrets
        # git reads the credential from this file (credential.helper=store): the token
        # is never in a URL, a process argument or the repository's config.
        write_private(home / ".git-credentials",
                            f"{url.scheme}://{quote(secrets.git_username, safe='')}:"
                            f"{quote(secrets.git_token, safe='')}@{url.netloc}\n", uid)
        name = spec.owner_name.replace("\n", " ").replace('"', "'") or spec.owner_username
        write_private(home / ".gitconfig",
                            f'[user]\n\tname = "{name}"\n\temail = "{spec.owner_email}"\n'
                            "[credential]\n\thelper = store\n", uid)
        repo = home / spec.project_id
        if not (repo / ".git").exists():
            shutil.rmtree(repo, ignore_errors=True)
            self._git(uid, home, ["clone", "--quiet", "--branch", spec.branch,
                                  spec.clone_url, str(repo)])
        return home

    def _git(self, uid: int | None, home: Path, args: list[str]) -> None:
        env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin",
               "GIT_TERMINAL_PROMPT": "0", "LANG": "C.UTF-8"}
        done = subprocess.run(["git", *args], env=env, cwd=home, capture_output=True,
                              text=True, timeout=300, check=False, **as_user(uid))  # type: ignore[call-overload]
        if done.returncode != 0:
            raise WorkspaceStartError(
                f"Cloning the project repository failed: {done.stderr.strip()[-500:]}")

    # -- server -------------------------------------------------------------------------

    def _environment(self, spec: WorkspaceSpec, env_path: Path, home: Path) -> dict[str, str]:
        """The server's whole environment: nothing of Balsam's own is inherited."""
        secrets = spec.secrets
        user = re.sub(r"[^A-Za-z0-9._-]", "_", spec.owner_username) or "user"
        return {
            "PATH": f"{env_path / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(env_path),
            "HOME": str(home), "USER": user, "LOGNAME": user, "SHELL": "/bin/bash",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "JUPYTER_TOKEN": secrets.server_token,
            "AWS_ACCESS_KEY_ID": secrets.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": secrets.s3_secret_key,
            "JUPYTERLAB_S3_ACCESS_KEY_ID": secrets.s3_access_key,
            "JUPYTERLAB_S3_SECRET_ACCESS_KEY": secrets.s3_secret_key,
            **spec.env,
        }

    def start(self, spec: WorkspaceSpec, progress: Progress) -> Endpoint:
        current = self.endpoint(spec.workspace_id)
        if current is not None:
            return current
        folder = self._dir(spec.workspace_id)
        folder.mkdir(exist_ok=True)
        folder.chmod(0o711)
        if self.as_root:  # again: the data directory may have gained entries since
            share_with_workspaces(self.root, self.environments.root)
        uid = self._uid(spec.workspace_id)
        progress("Preparing the home folder")
        home = self._prepare_home(spec, uid)
        env_path = self.environments.ensure(spec.environment, progress)
        progress("Starting JupyterLab")
        port = free_port()
        log_fd = os.open(folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        limit = spec.limits.memory_mib * 1024 * 1024

        def limit_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        try:
            proc = subprocess.Popen(  # type: ignore[call-overload]
                server_command(env_path, spec.base_url, port, home,
                               allow_root=uid is None and self.as_root),
                env=self._environment(spec, env_path, home), cwd=home,
                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=limit_memory, **as_user(uid))
        finally:
            os.close(log_fd)
        self._procs[spec.workspace_id] = proc
        run = {"pid": proc.pid, "port": port, "token": spec.secrets.server_token}
        write_private(folder / "run.json", json.dumps(run), None)
        endpoint = Endpoint(f"http://127.0.0.1:{port}{spec.base_url}", spec.secrets.server_token)
        self._wait_ready(spec.workspace_id, endpoint)
        return endpoint

    def _wait_ready(self, workspace_id: str, endpoint: Endpoint) -> None:
        deadline = time.monotonic() + self.start_timeout
        headers = {"Authorization": f"token {endpoint.token}"}
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                probe = self.probe(workspace_id)
                if not probe.alive:
                    raise WorkspaceStartError(probe.reason or "JupyterLab exited.")
                try:
                    if client.get(endpoint.url + "api/status", headers=headers).is_success:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop(workspace_id)
        raise WorkspaceStartError(
            f"JupyterLab did not answer within {self.start_timeout:.0f} s.")

    def _pid(self, workspace_id: str) -> int | None:
        pid = (self._run_info(workspace_id) or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def probe(self, workspace_id: str) -> Probe:
        proc = self._procs.get(workspace_id)
        if proc is not None:
            code = proc.poll()
            return Probe(True) if code is None else Probe(False, self._exit_reason(
                workspace_id, code))
        pid = self._pid(workspace_id)
        if pid is not None and runs_server(pid, workspace_id):
            return Probe(True)
        return Probe(False, "The server is not running.")

    def _exit_reason(self, workspace_id: str, code: int) -> str:
        try:
            tail = (self._dir(workspace_id) / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            tail = ""
        if "MemoryError" in tail:
            return (f"JupyterLab stopped (exit status {code}): it ran out of memory "
                    "(the template's memory limit).")
        if code == -signal.SIGKILL:
            return ("JupyterLab was killed (signal 9), e.g. by the system for using too "
                    "much memory.")
        last = [line for line in tail.strip().splitlines() if line.strip()][-1:]
        return f"JupyterLab exited with status {code}" + (f": {last[0][-300:]}" if last else ".")

    def endpoint(self, workspace_id: str) -> Endpoint | None:
        info = self._run_info(workspace_id)
        if not info or not self.probe(workspace_id).alive:
            return None
        return Endpoint(f"http://127.0.0.1:{info['port']}/workspaces/{workspace_id}/",
                        str(info["token"]))

    def stop(self, workspace_id: str) -> None:
        proc = self._procs.pop(workspace_id, None)
        pid = proc.pid if proc is not None else self._pid(workspace_id)
        if pid is not None and (proc is not None or runs_server(pid, workspace_id)):
            signal_group(pid, signal.SIGTERM)  # JupyterLab shuts its kernels down
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            else:
                wait_gone(lambda: runs_server(pid, workspace_id), 10)
            signal_group(pid, signal.SIGKILL)
            if proc is not None:
                proc.wait()
        uid_file = self._dir(workspace_id) / "uid"
        if self.as_root and uid_file.exists():
            kill_user(int(uid_file.read_text()))  # kernels and anything else left running
        (self._dir(workspace_id) / "run.json").unlink(missing_ok=True)

    def delete(self, workspace_id: str) -> None:
        self.stop(workspace_id)
        shutil.rmtree(self._dir(workspace_id), ignore_errors=True)

    def activity(self, workspace_id: str) -> datetime | None:
        endpoint = self.endpoint(workspace_id)
        return last_activity(endpoint) if endpoint else None

    def running(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _ID.match(p.name) and self.probe(p.name).alive)

    def environment_lock(self, spec: EnvironmentSpec) -> dict[str, str] | None:
        return self.environments.lock(spec)

    def close(self) -> None:
        self._procs.clear()
