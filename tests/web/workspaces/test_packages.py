"""Installing packages inside a workspace, as SCB's guidance asks: pip and R's
install.packages use only the package sources the installation names, install into the
home beside the read-only environment, and what was installed is recorded on the
workspace (``environment.userPackages``) — read as the workspace's own user, so what a
kernel plants there cannot make Balsam read another's files or record forged names.

A local package index and CRAN-like repository (served here over HTTP on loopback) hold
packages that exist nowhere else; the installation's settings name them."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import Kernel, wait_state

WHEEL = "balsam_probe-1.0-py3-none-any.whl"


def _wheel() -> bytes:
    files = {
        "balsam_probe/__init__.py": 'VALUE = "från det lokala indexet"\n',
        "balsam_probe-1.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: balsam-probe\nVersion: 1.0\n"
        ),
        "balsam_probe-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: balsam-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as wheel:
        record = []
        for name, text in files.items():
            data = text.encode()
            wheel.writestr(name, data)
            digest = hashlib.sha256(data).digest()
            encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            record.append(f"{name},sha256={encoded},{len(data)}")
        record.append("balsam_probe-1.0.dist-info/RECORD,,")
        wheel.writestr("balsam_probe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return out.getvalue()


def _r_package(root: Path) -> None:
    """``balsamprobe`` 0.1 as a CRAN-like repository under ``root/cran``."""
    source = root / "build" / "balsamprobe"
    (source / "R").mkdir(parents=True)
    (source / "DESCRIPTION").write_text(
        "Package: balsamprobe\nVersion: 0.1\nTitle: Probe\nDescription: A probe.\n"
        "License: MIT\nAuthor: Balsam\nMaintainer: Balsam <balsam@example.org>\n"
    )
    (source / "NAMESPACE").write_text("export(probe)\n")
    (source / "R" / "probe.R").write_text('probe <- function() "från CRAN-spegeln"\n')
    contrib = root / "cran" / "src" / "contrib"
    contrib.mkdir(parents=True)
    subprocess.run(
        ["R", "CMD", "build", "--no-build-vignettes", "--no-manual", str(source)],
        cwd=contrib,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["Rscript", "-e", f"tools::write_PACKAGES('{contrib}', type = 'source')"],
        check=True,
        capture_output=True,
    )


class _Sources:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        sources = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                sources.requests.append(self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Sources]:
    if shutil.which("R") is None:
        pytest.skip("R is not installed (make system-packages)")
    root = tmp_path_factory.mktemp("sources")
    simple = root / "simple" / "balsam-probe"
    simple.mkdir(parents=True)
    (simple / WHEEL).write_bytes(_wheel())
    (simple / "index.html").write_text(f'<a href="{WHEEL}">{WHEEL}</a>\n')
    _r_package(root)
    served = _Sources(root)
    yield served
    served.server.shutdown()


@pytest.fixture(scope="module")
def named_sources(ctx: AppContext, sources: _Sources) -> Iterator[_Sources]:
    """The installation's settings (BALSAM_WORKSPACES__PIP_INDEX_URL / __CRAN_URL) as
    the environment builder holds them, pointed at the local sources."""
    environments = ctx.providers.workspaces.environments  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(environments, "pip_index_url", f"{sources.url}/simple")
        patch.setattr(environments, "cran_url", f"{sources.url}/cran")
        yield sources


@pytest.fixture(scope="module")
def pkg_user(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    from tests.fixtures.app import _make_user

    user = _make_user(ctx, app, "paketinstallerare", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def pkg_ws(pkg_user: TestUser, supervisor: Any, named_sources: _Sources) -> Iterator[str]:
    project = pkg_user.client.post(
        "/api/v1/projects", json={"name": "Paket", "description": "", "branchName": "main"}
    ).json()
    created = pkg_user.client.post(
        "/api/v1/workspaces",
        json={"name": "P", "templateId": "r", "projectId": project["id"], "branchId": "main"},
    )
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    wait_state(pkg_user, workspace_id, "running")
    yield workspace_id
    pkg_user.client.delete(f"/api/v1/workspaces/{workspace_id}")


@pytest.fixture(scope="module")
def py(live_url: str, pkg_user: TestUser, pkg_ws: str) -> Iterator[Kernel]:
    kernel = Kernel(live_url, pkg_ws, pkg_user.headers)
    yield kernel
    kernel.close()


@pytest.fixture(scope="module")
def r(live_url: str, pkg_user: TestUser, pkg_ws: str) -> Iterator[Kernel]:
    kernel = Kernel(live_url, pkg_ws, pkg_user.headers, name="ir")
    yield kernel
    kernel.close()


def _run(kernel: Kernel, code: str) -> str:
    result = kernel.execute(code, timeout=300)
    assert result.error is None, result
    return result.stdout


def test_pip_installs_from_the_named_index_and_nowhere_else(
    py: Kernel, named_sources: _Sources
) -> None:
    out = _run(
        py,
        "import subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-m', 'pip', 'install', '-v', 'balsam-probe'],"
        " capture_output=True, text=True)\n"
        "print(done.returncode)\nprint(done.stdout)\nprint(done.stderr)",
    )
    assert out.startswith("0\n"), out[-3000:]
    assert f"Looking in indexes: {named_sources.url}/simple" in out
    # pip -v names every location it reads: the named index only (not PyPI, not the
    # machine's own pip.conf's extra indexes or find-links, no version check).
    urls = set(re.findall(r"(?:https?|file)://[^\s'\")]+", out))
    assert urls and all(u.startswith(named_sources.url) for u in urls), urls
    assert f"/simple/balsam-probe/{WHEEL}" in named_sources.requests
    # A new process and the running kernel both see it, after the environment's own.
    out = _run(
        py,
        "import importlib, os, sys\nimportlib.invalidate_caches()\nimport balsam_probe\n"
        "print(balsam_probe.VALUE)\nprint(balsam_probe.__file__)\n"
        "site = os.environ['BALSAM_USER_SITE']\n"
        "print(sys.path.index(site) > max(i for i, p in enumerate(sys.path)"
        " if p.startswith(sys.prefix) and p.endswith('site-packages')))",
    )
    value, where, after = out.split("\n")[:3]
    assert value == "från det lokala indexet"
    assert "/home/.local/lib/python3" in where and after == "True", out


def test_a_locked_package_cannot_be_replaced(py: Kernel) -> None:
    out = _run(
        py,
        "import subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '-y', 'pandas'],"
        " capture_output=True, text=True)\n"
        "print(done.returncode)\nimport pandas\nprint(pandas.__version__)",
    )
    code, version = out.split("\n")[:2]
    assert code != "0" and version == "3.1.1", out


def test_r_installs_from_the_named_cran_mirror(r: Kernel, named_sources: _Sources) -> None:
    out = _run(
        r,
        'install.packages("balsamprobe", quiet = TRUE)\n'
        'library(balsamprobe)\ncat(probe(), getOption("repos"), .libPaths()[1], sep = "\\n")',
    )
    value, repos, library = out.split("\n")[:3]
    assert value == "från CRAN-spegeln"
    assert repos == f"{named_sources.url}/cran"
    assert library.endswith("/home/R/library"), out
    assert any(p.startswith("/cran/src/contrib/balsamprobe_0.1") for p in named_sources.requests)


def test_what_was_installed_is_recorded_and_forged_entries_are_not(
    ctx: AppContext,
    r: Kernel,
    py: Kernel,
    pkg_user: TestUser,
    pkg_ws: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    secret = tmp_path_factory.mktemp("not-theirs") / "DESCRIPTION"
    secret.write_text("Package: rootsecret\nVersion: 1\n")
    secret.chmod(0o600)
    # Planted by the user: a forged name, a forged version, and a DESCRIPTION that
    # links to a file only Balsam may read (recorded if Balsam read it as root).
    _run(
        py,
        "import os\nlib = os.environ['R_LIBS_USER']\n"
        "for name, text in [('evil', 'Package: ../../x\\nVersion: 1\\n'),"
        " ('evil2', 'Package: ok\\nVersion: <script>\\n')]:\n"
        "    os.makedirs(f'{lib}/{name}', exist_ok=True)\n"
        "    open(f'{lib}/{name}/DESCRIPTION', 'w').write(text)\n"
        "os.makedirs(f'{lib}/link', exist_ok=True)\n"
        f"os.symlink({str(secret)!r}, f'{{lib}}/link/DESCRIPTION')",
    )
    stopped = pkg_user.client.post(f"/api/v1/workspaces/{pkg_ws}/stop")
    assert stopped.status_code in (200, 202), stopped.text
    body = wait_state(pkg_user, pkg_ws, "stopped")
    installed = body["environment"]["userPackages"]
    assert installed == {"R/balsamprobe": "0.1", "balsam-probe": "1.0"}, installed
    if os.geteuid() == 0:  # as root, the link is readable by Balsam's own user only
        assert "R/rootsecret" not in installed
