"""Recorded runs on this machine: the runner in a scratch checkout, isolated as a
workspace is.

A run gets a folder beside the workspaces (``<data_dir>/workspaces/run-<id>/``) and,
when Balsam is root, a user id of its own from the host-wide registry (released when
the run has ended). Layout::

    run-<id>/            0711, Balsam's
    run-<id>/home/       0700, the run's user: repo/ (the checkout), results/, plan.json
    run-<id>/jupyter/    0755, Balsam's: the kernel specs (IPC, no TCP port)
    run-<id>/bin/        0755, Balsam's: balsam_runner.py
    run-<id>/runner.log  0600, Balsam's: what the runner itself wrote to stderr

The checkout is unpacked by ``tar`` running as the run's user, so links in the
repository can only reach what that user may. The runner runs with the memory and
process limits of a workspace, its kernels talk over IPC in a private runtime folder,
and everything is removed when it ends: processes of the uid, its leftovers in shared
folders, the folder itself. The user's workspace and the repository are never touched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from balsam.children import group_dying_with_parent
from balsam.providers.workspaces import r_environment, runtime
from balsam.providers.workspaces.base import RunEvents, RunSpec, WorkspaceStartError
from balsam.providers.workspaces.jupyter import write_kernel_spec
from balsam.providers.workspaces.unix import (
    as_user,
    kill_user,
    remove_leftovers,
    signal_group,
    write_private,
)

if TYPE_CHECKING:
    from balsam.providers.workspaces.local import LocalWorkspaceProvider

log = logging.getLogger(__name__)
#: Longest event line read from a runner (longer ones are cut and ignored).
MAX_EVENT_BYTES = 64 * 1024
RUNNER = "balsam_runner.py"


def folder_id(run_id: str) -> str:
    return f"run-{run_id}"


def execute(
    provider: LocalWorkspaceProvider,
    spec: RunSpec,
    events: RunEvents,
    cancelled: Callable[[], bool],
) -> int:
    """See :meth:`WorkspaceProvider.execute_run`."""
    name = folder_id(spec.run_id)
    folder = provider.root / name
    folder.mkdir(mode=0o711, exist_ok=True)
    folder.chmod(0o711)
    home = folder / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    uid = provider.uid_for(name, home)
    run_dir = provider.runtime_folder(name)
    try:
        if uid is not None:
            os.chown(home, uid, uid)
        env_path = provider.environments.ensure(spec.environment, lambda _m: None)
        _unpack(spec.archive, home, uid)
        write_private(home / "plan.json", json.dumps(spec.plan), uid)
        write_kernel_spec(env_path, folder / "jupyter")
        r_environment.write_kernel_spec(env_path, folder / "jupyter")
        script = _write_runner(folder)
        runtime.recreate(run_dir, uid)
        env = _environment(spec, env_path, home, run_dir, folder)
        return _run(provider, spec, script, env, home, uid, folder, events, cancelled)
    finally:
        clean_up(provider, spec.run_id)


def clean_up(provider: LocalWorkspaceProvider, run_id: str) -> None:
    """Remove everything of the run: every process of its uid (a uid the registry still
    holds for it), its leftovers in shared folders, its runtime folder and its folder;
    then release the uid. Idempotent; also what the repair does for a run whose Balsam
    died (its runner died with Balsam, not what the run's code detached)."""
    name = folder_id(run_id)
    uid = provider.uids.ours(name) if provider.as_root else None
    if uid is not None:
        kill_user(uid)
        remove_leftovers(uid)
    runtime.remove(provider.runtime_folder(name))
    shutil.rmtree(provider.root / name, ignore_errors=True)
    if uid is not None:
        provider.release_uid(name)


def _unpack(archive: bytes, home: Path, uid: int | None) -> None:
    (home / "repo").mkdir(exist_ok=True)
    (home / "results").mkdir(exist_ok=True)
    if uid is not None:
        os.chown(home / "repo", uid, uid)
        os.chown(home / "results", uid, uid)
    done = subprocess.run(  # type: ignore[call-overload]
        group_dying_with_parent(["tar", "-x", "--no-same-owner", "-C", str(home / "repo")]),
        input=archive,
        capture_output=True,
        timeout=300,
        check=False,
        start_new_session=True,
        **as_user(uid),
    )
    if done.returncode != 0:
        raise WorkspaceStartError(
            f"The checkout could not be unpacked: {done.stderr.decode(errors='replace')[-300:]}"
        )


def _write_runner(folder: Path) -> Path:
    bin_dir = folder / "bin"
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    bin_dir.chmod(0o755)
    target = bin_dir / RUNNER
    body = resources.files("balsam.data").joinpath(f"workspace/{RUNNER}").read_text("utf-8")
    target.write_text(body, encoding="utf-8")
    target.chmod(0o644)
    return target


def _environment(
    spec: RunSpec, env_path: Path, home: Path, run_dir: Path, folder: Path
) -> dict[str, str]:
    """The runner's whole environment: nothing of Balsam's own is inherited."""
    return {
        "PATH": f"{env_path / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(env_path),
        "HOME": str(home),
        "USER": "balsam-run",
        "LOGNAME": "balsam-run",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": spec.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": spec.s3_secret_key,
        "JUPYTERLAB_S3_ACCESS_KEY_ID": spec.s3_access_key,
        "JUPYTERLAB_S3_SECRET_ACCESS_KEY": spec.s3_secret_key,
        **spec.env,
        "JUPYTER_RUNTIME_DIR": str(run_dir),
        "JUPYTER_PATH": str(folder / "jupyter"),
        "BALSAM_RUN_RESULTS": str(home / "results"),
        "R_PROFILE_USER": str(home / ".Rprofile"),
        "R_ENVIRON_USER": str(home / ".Renviron"),
        **r_environment.server_environment(env_path, home, None),
    }


def _run(
    provider: LocalWorkspaceProvider,
    spec: RunSpec,
    script: Path,
    env: dict[str, str],
    home: Path,
    uid: int | None,
    folder: Path,
    events: RunEvents,
    cancelled: Callable[[], bool],
) -> int:
    limit = spec.limits.memory_mib * 1024 * 1024
    nproc = provider.max_processes if uid is not None else None

    def limits() -> None:  # in the child, after it has become ``uid``
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    log_fd = os.open(folder / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        proc = subprocess.Popen(  # type: ignore[call-overload]
            group_dying_with_parent(
                [str(env["VIRTUAL_ENV"]) + "/bin/python", "-I", str(script), "../plan.json"]
            ),
            env=env,
            cwd=home / "repo",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_fd,
            start_new_session=True,
            preexec_fn=limits,
            **as_user(uid),
        )
    finally:
        os.close(log_fd)
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(proc, uid, cancelled, stop), name=f"run-{spec.run_id}", daemon=True
    )
    watcher.start()
    try:
        assert proc.stdout is not None
        for line in bounded_lines(proc.stdout.fileno()):
            _event(line, events)
        return int(proc.wait())
    finally:
        stop.set()
        watcher.join()
        tail = (folder / "runner.log").read_text(errors="replace")[-2000:]
        if tail.strip():  # quoted: the runner's output must not forge log lines
            log.info("run %s: the runner wrote: %r", spec.run_id, tail)


def bounded_lines(fd: int, limit: int = MAX_EVENT_BYTES) -> Iterator[bytes]:
    """Lines read from ``fd`` until end of file; a line longer than ``limit`` is
    dropped as it arrives, so memory stays bounded whatever is written."""
    pending = bytearray()
    dropping = False
    while chunk := os.read(fd, 65536):
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            if not dropping:
                yield line
            dropping = False
        if len(pending) > limit:
            pending.clear()
            dropping = True


def _event(line: bytes, events: RunEvents) -> None:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        event = json.loads(line)
        if isinstance(event, dict):
            events(event)


def _watch(
    proc: subprocess.Popen[bytes],
    uid: int | None,
    cancelled: Callable[[], bool],
    stop: threading.Event,
) -> None:
    """Stop the runner (and everything of its uid) once the run is cancelled."""
    while not stop.wait(0.5):
        if proc.poll() is not None:
            return
        if cancelled():
            signal_group(proc.pid, signal.SIGKILL)
            if uid is not None:
                kill_user(uid)
            return
