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
import re
import subprocess
from pathlib import Path

from balsam.providers.workspaces.unix import as_user

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

#: Run as the workspace's user with ``python -I -S``: nothing of theirs is imported.
_SCAN = r"""
import json, os
from importlib import metadata
found = {}
site = os.environ.get("BALSAM_USER_SITE", "")
if os.path.isdir(site):
    for count, dist in enumerate(metadata.distributions(path=[site])):
        if count >= 2000:
            break
        name = dist.metadata["Name"]
        if name:
            found[name] = dist.version
library = os.environ.get("R_LIBS_USER", "")
if os.path.isdir(library):
    for entry in sorted(os.listdir(library))[:2000]:
        try:
            with open(os.path.join(library, entry, "DESCRIPTION"), encoding="utf-8",
                      errors="replace") as f:
                text = f.read(65536)
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line
                      and not line[:1].isspace())
        if "Package" in fields and "Version" in fields:
            found["R/" + fields["Package"].strip()] = fields["Version"].strip()
print(json.dumps(found))
"""
_NAME = re.compile(r"^(R/)?[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}$")
MAX_PACKAGES = 1000


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


def scan(python: str, env_path: Path, home: Path, uid: int | None) -> dict[str, str] | None:
    """name → version of what the user installed into ``home`` (None when it cannot be
    read). Runs ``python`` as ``uid``; what it prints is the user's to shape, so only
    names and versions of the expected form are kept, at most :data:`MAX_PACKAGES`."""
    site = user_site(env_path, home)
    env = {"LANG": "C.UTF-8", "HOME": str(home), "R_LIBS_USER": str(home / R_LIBRARY)}
    if site is not None:
        env["BALSAM_USER_SITE"] = str(site)
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", _SCAN],
            env=env,
            cwd="/",
            capture_output=True,
            timeout=30,
            check=False,
            **as_user(uid),  # type: ignore[call-overload]
        )
        found = json.loads(done.stdout[: 1 << 20]) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    kept = {
        str(name): str(version)
        for name, version in found.items()
        if isinstance(version, str) and _NAME.match(str(name)) and _VERSION.match(version)
    }
    return dict(sorted(kept.items())[:MAX_PACKAGES])
