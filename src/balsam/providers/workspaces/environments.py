"""Template environments: one Python virtual environment per template version.

An environment is built the first time a workspace of its template version
starts, then shared read-only by every workspace of that version. Building
uses ``uv`` (fast, parallel, cached) and records the exact package versions
(the lock) next to the environment, so a workspace's results can be traced to
the packages that produced them.

Layout under the environments folder::

    <template>-<version>/          the virtual environment
    <template>-<version>/balsam-lock.json   written last: present = ready
    <template>-<version>.log       output of the last build

A failed build leaves no environment behind (the next start tries again) and
its reason names the last lines of the installer's output.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from balsam.children import group_dying_with_parent
from balsam.providers.workspaces import r_environment, user_packages
from balsam.providers.workspaces.base import EnvironmentSpec, Progress, WorkspaceStartError

LOCK_FILE = "balsam-lock.json"


def _world_executable(path: Path) -> bool:
    """Whether any user may execute ``path`` (every folder above it searchable)."""
    path = path.resolve()
    if not path.exists() or not path.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def default_python() -> str:
    """The interpreter to build environments from: Balsam's own, unless workspaces
    run under other user ids (as root) and cannot reach it (e.g. under /root)."""
    own = Path(getattr(sys, "_base_executable", sys.executable))
    if os.geteuid() != 0 or _world_executable(own):
        return str(own)
    for candidate in (Path("/usr/bin/python3"), Path("/usr/local/bin/python3")):
        if _world_executable(candidate):
            return str(candidate)
    return str(own)


def _private_lock_file(path: Path) -> IO[bytes]:
    """The build lock file, opened; 0600 and Balsam's, even if an earlier release left
    it 0666: ``flock`` needs no write access, so a file workspace users could open
    would be a channel between workspaces (and a way to hold up builds)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "r+b")


def _uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a dependency
        found = shutil.which("uv")
        if found is None:
            raise WorkspaceStartError("The 'uv' installer is not installed.") from None
        return found
    return str(find_uv_bin())


class EnvironmentBuilder:
    """Builds and finds template environments under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        python: str | None = None,
        index_url: str | None = None,
        cran_url: str | None = None,
        pip_index_url: str | None = None,
        timeout: float = 1800,
    ) -> None:
        self.root = root
        self.python = python or default_python()
        self.index_url = index_url
        self.cran_url = cran_url
        #: Where pip installs from inside workspaces (see :mod:`.user_packages`).
        self.pip_index_url = pip_index_url or index_url
        self.timeout = timeout
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, spec: EnvironmentSpec) -> Path:
        return self.root / spec.name

    def lock(self, spec: EnvironmentSpec) -> dict[str, str] | None:
        """name → version of every installed package (and ``python``), or None
        when not built."""
        try:
            data = json.loads((self.path(spec) / LOCK_FILE).read_text())
        except (OSError, ValueError):
            return None
        return {str(k): str(v) for k, v in data.get("packages", {}).items()}

    def ensure(self, spec: EnvironmentSpec, progress: Progress) -> Path:
        """The environment's folder, building it first if needed. Concurrent
        callers (threads or processes) wait for one build."""
        with self._guard:
            lock = self._locks.setdefault(spec.name, threading.Lock())
        with lock:
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o755)
            with _private_lock_file(self.root / f".{spec.name}.lock") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # another Balsam process may be building
                # At every start: a removed system package fails the start with its name,
                # not a kernel that cannot start.
                r_environment.debian_versions(spec.system_packages)
                recorded = self.lock(spec)
                if recorded is None:
                    progress(
                        f"Building environment {spec.name} (first use of this template version)"
                    )
                    self._build(spec)
                elif spec.system_packages and r_environment.debian_changed(spec, recorded):
                    self._relock(spec, recorded)
                # uv's own lock file, 0666: any workspace could hold it (an environment
                # built before this release may still have one).
                (self.path(spec) / ".lock").unlink(missing_ok=True)
        return self.path(spec)

    def _system_part(
        self, spec: EnvironmentSpec, target: Path, log: Path, *, install: bool
    ) -> dict[str, str]:
        """The lock's entries for R and the Debian packages (installing the R part into
        ``target`` first when ``install``)."""
        if not spec.r:
            versions = r_environment.debian_versions(spec.system_packages)
            return {f"deb/{name}": version for name, version in versions.items()}
        if install:
            r_environment.install(target, spec, lambda args: self._run(args, log), self.cran_url)
        return r_environment.lock(target, spec, lambda args: self._run(args, log))

    def _relock(self, spec: EnvironmentSpec, recorded: dict[str, str]) -> None:
        """Write the lock again after the machine's Debian packages changed."""
        target = self.path(spec)
        kept = {k: v for k, v in recorded.items() if k != "R" and not k.startswith(("R/", "deb/"))}
        data = json.loads((target / LOCK_FILE).read_text())
        data["packages"] = {
            **kept,
            **self._system_part(spec, target, self._log(spec), install=False),
        }
        (target / LOCK_FILE).write_text(json.dumps(data, indent=1))

    def _log(self, spec: EnvironmentSpec) -> Path:
        return self.root / f"{spec.name}.log"

    def _run(self, args: list[str], log: Path) -> str:
        """stdout of the installer command ``args``; WorkspaceStartError if it fails
        or times out. It dies with Balsam, and so do the interpreters and build
        backends it starts (``subprocess.run`` holds this thread until it ends)."""
        # The installer is ours, not user code, but still gets no Balsam secrets.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BALSAM_")}
        try:
            done = subprocess.run(
                group_dying_with_parent(args),
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise WorkspaceStartError(
                f"Building the environment took longer than {self.timeout:.0f} s."
            ) from None
        with log.open("a") as out:
            out.write(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise WorkspaceStartError(f"Building the environment failed:\n{tail}")
        return done.stdout

    def _build(self, spec: EnvironmentSpec) -> None:
        target = self.path(spec)
        log = self._log(spec)
        log.write_text("")
        shutil.rmtree(target, ignore_errors=True)
        uv = _uv()
        python = str(target / "bin" / "python")
        index = ["--index-url", self.index_url] if self.index_url else []
        try:
            self._run([uv, "venv", "--quiet", "--python", self.python, str(target)], log)
            # Byte-compiled now: workspaces run under other user ids and cannot write
            # the cache into the shared environment (each start would compile again).
            self._run(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--compile-bytecode",
                    "--python",
                    python,
                    *index,
                    *spec.requirements,
                ],
                log,
            )
            frozen = self._run([uv, "pip", "freeze", "--python", python], log)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        packages = dict(line.split("==", 1) for line in frozen.splitlines() if "==" in line)
        user_packages.write_pth(target)
        version = self._run(
            [python, "-c", "import platform; print(platform.python_version())"], log
        ).strip()
        try:
            packages.update(self._system_part(spec, target, log, install=True))
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        for folder, _dirs, files in os.walk(target):  # workspaces run as other users
            os.chmod(folder, 0o755)  # noqa: S103 - shared read-only by workspaces
            for name in files:
                file = Path(folder, name)
                if not file.is_symlink():  # readable by all, writable by Balsam alone
                    mode = file.stat().st_mode & ~0o022
                    file.chmod(mode | (0o555 if mode & 0o100 else 0o444))
        (target / LOCK_FILE).write_text(
            json.dumps(
                {
                    "template": spec.template_id,
                    "version": spec.version,
                    "requirements": list(spec.requirements),
                    "packages": {"python": version, **packages},
                },
                indent=1,
            )
        )
