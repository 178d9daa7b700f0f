"""Packages a workspace's user installs into their home, and where they come from.

A template's environment is shared and read-only to workspaces. Inside a workspace
``pip install`` adds packages to ``~/.local`` (``PIP_PREFIX``; the environment's
``balsam_user_site.pth`` puts its site-packages on ``sys.path`` *after* the
environment's own, so a locked package is never shadowed, and replacing one fails
with "Permission denied"); R's ``install.packages`` adds them to ``~/R/library``
(``R_LIBS_USER``, first on R's library path). Both use only the package sources the
installation names: ``BALSAM_WORKSPACES__PIP_INDEX_URL`` (else the index environments
are built from, else PyPI), with the machine's own pip configuration's extra indexes
and find-links cleared, and ``BALSAM_WORKSPACES__CRAN_URL`` (see
:mod:`.r_environment`).

What is installed there is read at each start and stop (:func:`scan`), as the
workspace's own user and never as root, and recorded on the workspace
(``environment.userPackages``: Python distributions by name, R packages as
``R/<name>``), so results stay traceable to them.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import subprocess
import time
from pathlib import Path

from balsam.providers.workspaces.unix import as_user, signal_group

#: Where pip installs in a home (its prefix), and R packages.
PREFIX = Path(".local")
R_LIBRARY = Path("R") / "library"
#: The file in an environment's site-packages that adds the user's site-packages.
PTH_NAME = "balsam_user_site.pth"
_PTH = (
    "import os, sys; p = os.environ.get('BALSAM_USER_SITE'); "
    "p and p not in sys.path and sys.path.append(p)\n"
)
PYPI = "https://pypi.org/simple"

#: Run as the workspace's user with ``python -I -S`` (nothing of theirs is imported),
#: under the workspace's limits. What it reads is theirs: only regular files, opened
#: without following links and without blocking (a FIFO is skipped, not waited on),
#: at most 64 KiB of each, at most MAX entries; names and versions of an unexpected form
#: are dropped here already, so what it prints stays small.
_SCAN = r"""
import json, os, re, stat, sys
MAX = 1000
PY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
R_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,99}")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")
budget = [4 << 20]  # bytes read in all

def incomplete():
    print(json.dumps({"incomplete": True}))
    sys.exit(0)

def head(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        data = os.read(fd, 16384)
    except OSError:
        return ""
    finally:
        os.close(fd)
    budget[0] -= len(data)
    if budget[0] < 0:
        incomplete()
    return data.decode("utf-8", "replace")

def fields(text):
    found = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end (a wheel's METADATA goes on with its description)
        if ":" in line and not line[:1].isspace():
            key, value = line.split(":", 1)
            found.setdefault(key.strip(), value.strip())
    return found

def entries(folder, wanted):
    # Every name is looked at (a flood of other entries hides nothing); too many of
    # the wanted ones make the record incomplete rather than silently partial.
    names = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if wanted(entry.name):
                    names.append(entry.name)
                    if len(names) > MAX:
                        incomplete()
    except OSError:
        return []
    return sorted(names)

def good(pattern, value):
    return pattern.fullmatch(value) is not None

python, r = {}, {}
site = os.environ.get("BALSAM_USER_SITE", "")
for name in entries(site, lambda n: n.endswith(".dist-info")):
    meta = fields(head(os.path.join(site, name, "METADATA")))
    if good(PY_NAME, meta.get("Name", "")) and good(VERSION, meta.get("Version", "")):
        python[meta["Name"]] = meta["Version"]
library = os.environ.get("R_LIBS_USER", "")
for name in entries(library, lambda n: not n.startswith(".")):
    meta = fields(head(os.path.join(library, name, "DESCRIPTION")))
    if good(R_NAME, meta.get("Package", "")) and good(VERSION, meta.get("Version", "")):
        r[meta["Package"]] = meta["Version"]
print(json.dumps({"python": python, "r": r}))
"""
_PY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_R_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,99}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")
MAX_PACKAGES = 1000
#: Most the scan may print (its own output is far smaller) and take.
_MAX_OUTPUT = 1 << 20
SCAN_SECONDS = 10


def write_pth(env_path: Path) -> None:
    """The ``.pth`` file into every site-packages of the environment at ``env_path``."""
    for site in sorted((env_path / "lib").glob("python3*/site-packages")):
        (site / PTH_NAME).write_text(_PTH)


def user_site(env_path: Path, home: Path) -> Path | None:
    """``~/.local/lib/python3.X/site-packages`` for the environment's Python (None
    when the environment has no recognisable Python folder)."""
    found = sorted(p.name for p in (env_path / "lib").glob("python3*"))
    return home / PREFIX / "lib" / found[0] / "site-packages" if found else None


def server_environment(env_path: Path, home: Path, pip_index_url: str | None) -> dict[str, str]:
    """What a workspace server's environment gets for installing packages (``PATH`` is
    the caller's: ``~/.local/bin`` goes after the environment's own ``bin``)."""
    site = user_site(env_path, home)
    return {
        "PIP_PREFIX": str(home / PREFIX),
        **({"BALSAM_USER_SITE": str(site)} if site else {}),
        "PIP_INDEX_URL": pip_index_url or PYPI,
        # Empty: the machine's own pip.conf may name other indexes and folders.
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",  # it would ask pypi.org
    }


def scan(
    python: str, env_path: Path, home: Path, uid: int | None, *, memory_bytes: int = 256 << 20
) -> dict[str, str] | None:
    """name → version of what the user installed into ``home`` (Python distributions
    by name, R packages as ``R/<name>``), or None when it cannot be read whole (more
    than about a thousand packages, 4 MiB of metadata, or a failure). Runs
    ``python`` as ``uid`` with at most ``memory_bytes`` of address space, for at most
    :data:`SCAN_SECONDS`; reads at most :data:`_MAX_OUTPUT` of what it prints, and
    checks every name and version again (the process is the user's to tamper with)."""
    site = user_site(env_path, home)
    env = {"LANG": "C.UTF-8", "HOME": str(home), "R_LIBS_USER": str(home / R_LIBRARY)}
    if site is not None:
        env["BALSAM_USER_SITE"] = str(site)

    def limit() -> None:  # in the child, after it has become ``uid``
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (SCAN_SECONDS, SCAN_SECONDS))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    try:
        proc = subprocess.Popen(  # type: ignore[call-overload]
            [python, "-I", "-S", "-c", _SCAN],
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=limit,
            **as_user(uid),
        )
    except OSError:
        return None
    try:
        output = _bounded_output(proc)
    finally:
        signal_group(proc.pid, signal.SIGKILL)  # whatever it started goes too
        proc.wait()
    try:  # the user can tamper with the scan: any decoding failure means "unreadable"
        found = json.loads(output) if output is not None else None
    except Exception:
        return None
    if not isinstance(found, dict) or found.get("incomplete"):
        return None
    return _checked(found.get("python"), _PY_NAME, "") | _checked(found.get("r"), _R_NAME, "R/")


def _bounded_output(proc: subprocess.Popen[bytes]) -> bytes | None:
    """What ``proc`` prints until it exits: None when more than :data:`_MAX_OUTPUT`, or
    not done within :data:`SCAN_SECONDS`, or failed."""
    assert proc.stdout is not None
    deadline = time.monotonic() + SCAN_SECONDS
    chunks: list[bytes] = []
    size = 0
    with proc.stdout:
        os.set_blocking(proc.stdout.fileno(), False)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > _MAX_OUTPUT:
                return None
            chunks.append(chunk)
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
    return b"".join(chunks) if code == 0 else None


def _checked(found: object, name: re.Pattern[str], prefix: str) -> dict[str, str]:
    if not isinstance(found, dict):
        return {}
    kept = {
        f"{prefix}{key}": value
        for key, value in found.items()
        if isinstance(key, str)
        and isinstance(value, str)
        and name.fullmatch(key)
        and _VERSION.fullmatch(value)
    }
    return dict(sorted(kept.items())[:MAX_PACKAGES])
