"""Local workspace provider: one JupyterLab process per workspace on this machine.

Each server listens on a unix socket in the workspace's private runtime folder
and its kernels talk to it over IPC there (see :mod:`.runtime`): a workspace
opens no TCP port. It is reached only through Balsam's proxy, which presents the
server's token; the token never reaches the browser. Layout under ``root``
(``<data_dir>/workspaces``)::

    <id>/            0711, Balsam's
    <id>/home/       0700, the workspace's own user: the home, kept across stops
    <id>/run.json    0600, Balsam's: pid, socket, uid and token of the running server
    <id>/server.log  0600, Balsam's: the server's output
    <id>/uid         the numeric user id the workspace runs as (root only)
    <id>/jupyter/    0755, Balsam's: the Python kernel spec (no TCP port, see .kernel_config)
    <id>/bin/        0755, Balsam's: ``balsam`` (the data commands, see .cli_script)

When Balsam runs as root, every workspace runs under its own numeric user id,
so it can read neither other workspaces' homes nor Balsam's data. Otherwise
workspaces run as Balsam's user (one trusted user on a laptop).

Memory is limited per process with ``RLIMIT_AS`` (inherited by kernels and
terminals): an allocation over the limit fails inside the kernel with a
``MemoryError`` and the platform is untouched. As root, ``RLIMIT_NPROC`` bounds the
processes (threads included) of the workspace's own uid: a fork bomb gets ``EAGAIN``
at ``max_processes`` and the host keeps its pids. Stop kills every process of that
uid (see :func:`.unix.kill_user`), fork chains included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

from balsam import hostuids
from balsam.children import group_dying_with_parent
from balsam.hostuids import HostUidRegistry
from balsam.providers.workspaces import local_runs, r_environment, runtime, user_packages
from balsam.providers.workspaces.base import (
    Endpoint,
    EnvironmentSpec,
    Probe,
    Progress,
    RunEvents,
    RunSpec,
    WorkspaceProvider,
    WorkspaceSpec,
    WorkspaceStartError,
)
from balsam.providers.workspaces.cli_script import write_cli
from balsam.providers.workspaces.environments import EnvironmentBuilder
from balsam.providers.workspaces.jupyter import (
    get_json,
    last_activity,
    server_command,
    stop_when_idle,
    write_kernel_spec,
    write_lab_overrides,
)
from balsam.providers.workspaces.uids import WorkspaceUids
from balsam.providers.workspaces.unix import (
    as_user,
    kill_user,
    remove_leftovers,
    runs_server,
    share_with_workspaces,
    signal_group,
    wait_gone,
    write_private,
)

log = logging.getLogger(__name__)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: Why a server started by an earlier release (on a TCP port) is stopped when found.
_TCP_SERVER = (
    "Its server was started by an earlier Balsam release on a TCP port and was "
    "stopped; start the workspace again."
)


class LocalWorkspaceProvider(WorkspaceProvider):
    def __init__(
        self,
        root: Path,
        environments: EnvironmentBuilder,
        *,
        uid_base: int = 200_000,
        start_timeout: float = 180,
        runtime_dir: Path | None = None,
        uid_registry: HostUidRegistry | None = None,
        max_processes: int = 1024,
    ) -> None:
        self.root = root
        #: RLIMIT_NPROC of a workspace's own uid (as root; not applied to Balsam's user).
        self.max_processes = max_processes
        #: Short, private folder of the workspaces' sockets (see :mod:`.runtime`).
        self.runtime_base = runtime.ensure_base(runtime_dir or runtime.default_base())
        self.environments = environments
        self.uid_base = uid_base
        self.start_timeout = start_timeout
        self.as_root = os.geteuid() == 0
        self.isolates_users = self.as_root
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)
        #: Workspace uids, claimed host-wide (see :mod:`.uids`); used as root only.
        self.uids = WorkspaceUids(
            root, uid_registry or HostUidRegistry(hostuids.DEFAULT_DIR, base=uid_base)
        )
        environments.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            share_with_workspaces(root, environments.root)
            self.uids.migrate()  # uid files of earlier releases

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
        """The workspace's own user id, claimed in the host-wide registry and checked
        again now (see :mod:`.uids`), or None when Balsam is not root and workspaces
        run as its own user. Raises WorkspaceStartError when it is not safe to use."""
        if not self.as_root:
            return None
        return self.uids.for_start(workspace_id, self._dir(workspace_id) / "home")

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
        try:
            write_private(
                home / ".git-credentials",
                f"{url.scheme}://{quote(secrets.git_username, safe='')}:"
                f"{quote(secrets.git_token, safe='')}@{url.netloc}\n",
                uid,
            )
        except OSError as exc:  # e.g. the user made it a folder
            raise WorkspaceStartError(f"~/.git-credentials cannot be written: {exc}") from exc
        self._write_gitconfig(
            home,
            uid,
            {
                "user.name": spec.owner_name or spec.owner_username,
                "user.email": spec.owner_email,
                "credential.helper": "store",
            },
        )
        repo = home / spec.project_id
        if not (repo / ".git").exists():
            shutil.rmtree(repo, ignore_errors=True)
            self._git(
                uid,
                home,
                ["clone", "--quiet", f"--branch={spec.branch}", "--", spec.clone_url, str(repo)],
                "Cloning the project repository",
            )
        return home

    def _write_gitconfig(self, home: Path, uid: int | None, values: dict[str, str]) -> None:
        """Write ``~/.gitconfig`` afresh through ``git config`` itself, as the
        workspace's user: git quotes every value, so a name or address can never
        add a line or section of its own (e.g. ``core.fsmonitor``, a command git
        runs), and the file is never written by root inside a home its user owns."""
        config = home / ".gitconfig"
        try:
            config.unlink(missing_ok=True)  # what an earlier release (or the user) wrote
        except OSError as exc:
            raise WorkspaceStartError(f"~/.gitconfig cannot be replaced: {exc}") from exc
        for key, value in values.items():
            self._git(
                uid,
                home,
                ["config", "--file", str(config), "--", key, value],
                "Writing the git configuration",
            )

    def _git(self, uid: int | None, home: Path, args: list[str], what: str) -> None:
        """Run git as the workspace's user in its home; WorkspaceStartError on failure.
        git and its helpers (``git-remote-http`` of a clone) die with Balsam:
        ``subprocess.run`` holds this thread until git has ended, and the uid
        changes before the wrapper sets the parent-death signal."""
        env = {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "GIT_TERMINAL_PROMPT": "0",
            "LANG": "C.UTF-8",
        }
        done = subprocess.run(
            group_dying_with_parent(["git", *args]),
            env=env,
            cwd=home,  # type: ignore[call-overload]
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            start_new_session=True,
            **as_user(uid),
        )
        if done.returncode != 0:
            raise WorkspaceStartError(f"{what} failed: {done.stderr.strip()[-500:]}")

    # -- server -------------------------------------------------------------------------

    def _runtime(self, workspace_id: str) -> Path:
        return runtime.folder_for(self.runtime_base, self._dir(workspace_id))

    def _environment(
        self, spec: WorkspaceSpec, env_path: Path, home: Path, run_dir: Path
    ) -> dict[str, str]:
        """The server's whole environment: nothing of Balsam's own is inherited."""
        secrets = spec.secrets
        user = re.sub(r"[^A-Za-z0-9._-]", "_", spec.owner_username) or "user"
        return {
            # The user's own scripts (pip's, in ~/.local/bin) after the environment's.
            "PATH": f"{env_path / 'bin'}:{self._dir(spec.workspace_id) / 'bin'}:"
            f"{home / user_packages.PREFIX / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(env_path),
            "HOME": str(home),
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "JUPYTER_TOKEN": secrets.server_token,
            "AWS_ACCESS_KEY_ID": secrets.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": secrets.s3_secret_key,
            "JUPYTERLAB_S3_ACCESS_KEY_ID": secrets.s3_access_key,
            "JUPYTERLAB_S3_SECRET_ACCESS_KEY": secrets.s3_secret_key,
            **secrets.connection_env,
            **spec.env,
            # Connection files and kernel sockets: private, and short enough for
            # unix socket paths.
            "JUPYTER_RUNTIME_DIR": str(run_dir),
            # Balsam's kernel spec first: its Python kernel opens no TCP port.
            "JUPYTER_PATH": str(self._dir(spec.workspace_id) / "jupyter"),
            # R reads the home's profile and environment files, never those of the
            # folder it starts in (a project member could commit one): in every
            # workspace, since any could start R.
            "R_PROFILE_USER": str(home / ".Rprofile"),
            "R_ENVIRON_USER": str(home / ".Renviron"),
            **r_environment.server_environment(env_path, home, self.environments.cran_url),
            **user_packages.server_environment(env_path, home, self.environments.pip_index_url),
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
        write_lab_overrides(env_path)
        progress("Starting JupyterLab")
        run_dir = self._runtime(spec.workspace_id)
        runtime.recreate(run_dir, uid)
        write_kernel_spec(env_path, folder / "jupyter")
        r_environment.write_kernel_spec(env_path, folder / "jupyter")
        write_cli(env_path, folder)
        sock = run_dir / runtime.SERVER_SOCKET
        log_fd = os.open(folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        limit = spec.limits.memory_mib * 1024 * 1024
        # Counted per real uid: only a workspace's own uid gets it, never Balsam's.
        nproc = self.max_processes if uid is not None else None

        def limit_memory() -> None:  # runs in the child, after it has become ``uid``
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            if nproc is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

        try:
            # Not wrapped by balsam.children: a server outlives Balsam on purpose and is
            # re-attached after a restart (or stopped by stop_unknown).
            proc = subprocess.Popen(  # type: ignore[call-overload]
                server_command(
                    env_path,
                    spec.base_url,
                    sock,
                    home,
                    start_in=spec.project_id,  # the clone (see _prepare_home)
                    allow_root=uid is None and self.as_root,
                    stop_when_idle_seconds=stop_when_idle(spec.idle_timeout_minutes),
                    kernels=["python3", *([r_environment.KERNEL] if spec.environment.r else [])],
                ),
                env=self._environment(spec, env_path, home, run_dir),
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=limit_memory,
                **as_user(uid),
            )
        finally:
            os.close(log_fd)
        self._procs[spec.workspace_id] = proc
        run = {"pid": proc.pid, "socket": str(sock), "uid": uid, "token": spec.secrets.server_token}
        write_private(folder / "run.json", json.dumps(run), None)
        endpoint = _endpoint_of(spec.workspace_id, run)
        assert endpoint is not None
        self._wait_ready(spec.workspace_id, endpoint)
        return endpoint

    def _wait_ready(self, workspace_id: str, endpoint: Endpoint) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            probe = self.probe(workspace_id)
            if not probe.alive:
                raise WorkspaceStartError(probe.reason or "JupyterLab exited.")
            with contextlib.suppress(OSError, ValueError):  # not listening yet
                get_json(endpoint, "api/status")
                return
            time.sleep(0.05)
        self.stop(workspace_id)
        raise WorkspaceStartError(f"JupyterLab did not answer within {self.start_timeout:.0f} s.")

    def _pid(self, workspace_id: str) -> int | None:
        pid = (self._run_info(workspace_id) or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def probe(self, workspace_id: str) -> Probe:
        proc = self._procs.get(workspace_id)
        if proc is not None:
            code = proc.poll()
            return (
                Probe(True) if code is None else Probe(False, self._exit_reason(workspace_id, code))
            )
        pid = self._pid(workspace_id)
        if pid is not None and runs_server(pid, workspace_id):
            if "socket" not in (self._run_info(workspace_id) or {}):
                self.stop(workspace_id)  # its kernels listen on TCP: never left running
                return Probe(False, _TCP_SERVER)
            return Probe(True)
        return Probe(False, "The server is not running.")

    def _exit_reason(self, workspace_id: str, code: int) -> str:
        try:
            tail = (self._dir(workspace_id) / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            tail = ""
        if "MemoryError" in tail:
            return (
                f"JupyterLab stopped (exit status {code}): it ran out of memory "
                "(the template's memory limit)."
            )
        if code == -signal.SIGKILL:
            return "JupyterLab was killed (signal 9), e.g. by the system for using too much memory."
        last = [line for line in tail.strip().splitlines() if line.strip()][-1:]
        return f"JupyterLab exited with status {code}" + (f": {last[0][-300:]}" if last else ".")

    def endpoint(self, workspace_id: str) -> Endpoint | None:
        info = self._run_info(workspace_id)
        if not info or not self.probe(workspace_id).alive:
            return None
        return _endpoint_of(workspace_id, info)

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
        # Kernels and anything else left running, but only under a uid still
        # registered to this workspace: never another's processes.
        uid = self.uids.ours(workspace_id) if self.as_root else None
        if uid is not None:
            kill_user(uid)
            # /dev/shm is memory shared by the host: what the workspace left there
            # (or in /tmp) would stay after it, filling the machine.
            for path in remove_leftovers(uid):
                log.info("workspace %s: removed %s", workspace_id, path)
        (self._dir(workspace_id) / "run.json").unlink(missing_ok=True)
        runtime.remove(self._runtime(workspace_id))

    def delete(self, workspace_id: str) -> None:
        self.stop(workspace_id)
        shutil.rmtree(self._dir(workspace_id), ignore_errors=True)

    def activity(self, workspace_id: str) -> datetime | None:
        endpoint = self.endpoint(workspace_id)
        return last_activity(endpoint) if endpoint else None

    def running(self) -> list[str]:
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _ID.match(p.name) and self.probe(p.name).alive
        )

    def stop_unknown(self, known: set[str]) -> list[str]:
        """Stop every server under ``root`` whose ``run.json`` names a live
        JupyterLab of a workspace not in ``known``. Servers deliberately outlive
        Balsam (they are re-attached), so only this finds one that nothing will."""
        stale = sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _ID.match(p.name) and p.name not in known and self._serves(p.name)
        )
        for workspace_id in stale:
            self.stop(workspace_id)
        return stale

    def _serves(self, workspace_id: str) -> bool:
        """Whether the pid in the workspace's ``run.json`` still runs its server."""
        pid = self._pid(workspace_id)
        return pid is not None and runs_server(pid, workspace_id)

    def environment_lock(self, spec: EnvironmentSpec) -> dict[str, str] | None:
        return self.environments.lock(spec)

    def user_packages(self, workspace_id: str, environment: str) -> dict[str, str] | None:
        """What the user installed into the home (see :mod:`.user_packages`), read as
        the workspace's own uid: None (not read) when that uid is no longer its."""
        uid = self.uids.ours(workspace_id) if self.as_root else None
        home = self._dir(workspace_id) / "home"
        if (self.as_root and uid is None) or not home.is_dir():
            return None
        env_path = self.environments.root / environment
        return user_packages.scan(self.environments.python, env_path, home, uid)

    # -- recorded runs (see :mod:`.local_runs`) ---------------------------------------

    def execute_run(self, spec: RunSpec, events: RunEvents, cancelled: Callable[[], bool]) -> int:
        if self.as_root:
            share_with_workspaces(self.root, self.environments.root)
        return local_runs.execute(self, spec, events, cancelled)

    def clean_up_run(self, run_id: str) -> None:
        local_runs.clean_up(self, run_id)

    def uid_for(self, folder_id: str, home: Path) -> int | None:
        """The uid a run (or workspace) folder's processes run as; None unless root."""
        return self._uid(folder_id) if self.as_root else None

    def runtime_folder(self, folder_id: str) -> Path:
        return self._runtime(folder_id)

    def release_uid(self, folder_id: str) -> None:
        """Hand a finished run's uid back to the registry (its processes and files gone)."""
        self.uids.registry.release(self.uids.owner(folder_id))

    def close(self) -> None:
        self._procs.clear()


def _endpoint_of(workspace_id: str, run: dict[str, object]) -> Endpoint | None:
    """The endpoint recorded in ``run.json``; None for a server without a socket."""
    sock, uid = run.get("socket"), run.get("uid")
    if not isinstance(sock, str):
        return None
    return Endpoint(
        f"http://localhost/workspaces/{workspace_id}/",
        str(run["token"]),
        socket=sock,
        socket_uid=uid if isinstance(uid, int) else None,
    )
