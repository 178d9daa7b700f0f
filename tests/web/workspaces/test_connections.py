"""Data connections reach the workspaces of their project, and only those: from a
real kernel of another project's workspace (its own uid, Balsam running as root),
neither the variables, nor the first workspace's process environment, nor Balsam's
key file, database or workspace secrets can be read."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from balsam.context import AppContext
from balsam.domain.data.connections.sealing import KEY_FILE
from tests.fixtures.app import TestUser, _make_user
from tests.fixtures.workspaces import Kernel, wait_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspaces run under their own uid only as root"
)

PASSWORD = "pg-" + secrets.token_hex(12)
TOKEN = "tok-" + secrets.token_hex(12)

#: Run in the other project's kernel: every place a secret could leak from.
PROBE = r"""
import json, os
def _try_read(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return "READ" + (" SECRET" if any(s.encode() in data for s in WANTED) else "")
    except PermissionError:
        return "denied"
    except OSError as exc:
        return type(exc).__name__
leaks = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for name in ("environ", "cmdline"):
        try:
            with open("/proc/%s/%s" % (pid, name), "rb") as f:
                text = f.read()
        except OSError:
            continue
        if any(s.encode() in text for s in WANTED):
            leaks.append("/proc/%s/%s" % (pid, name))
print(json.dumps({
    "env": sorted(k for k in os.environ if k.startswith("BALSAM_CONN_")),
    "leaks": leaks,
    "files": {p: _try_read(p) for p in FILES},
}))
"""


def _user(ctx: AppContext, app: Any, stem: str) -> Iterator[TestUser]:
    user = _make_user(ctx, app, f"{stem}{secrets.token_hex(3)}", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def ana(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    yield from _user(ctx, app, "ana")


@pytest.fixture(scope="module")
def eve(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    yield from _user(ctx, app, "eve")


def _workspace(user: TestUser, name: str, with_connections: bool) -> dict[str, Any]:
    created = user.client.post(
        "/api/v1/projects",
        json={"name": f"{name} {secrets.token_hex(3)}", "description": "", "branchName": "main"},
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    if with_connections:
        for body in (
            {
                "name": "warehouse",
                "kind": "postgresql",
                "host": "db.example.org",
                "database": "stat",
                "user": "ana",
                "password": PASSWORD,
            },
            {"name": "api", "kind": "http", "url": "https://api.example.org/", "token": TOKEN},
        ):
            added = user.client.post(f"/api/v1/projects/{pid}/connections", json=body)
            assert added.status_code == 201, added.text
    workspace = user.client.post(
        "/api/v1/workspaces",
        json={"name": "ws", "templateId": "python", "projectId": pid, "branchId": "main"},
    )
    assert workspace.status_code == 201, workspace.text
    return wait_state(user, workspace.json()["id"], "running")


@pytest.fixture(scope="module")
def kernels(
    live_url: str, ana: TestUser, eve: TestUser, supervisor: Any
) -> Iterator[dict[str, tuple[dict[str, Any], Kernel]]]:
    """Ana's workspace on the project with connections, Eve's on another one."""
    made = {}
    for name, user, with_connections in (("ana", ana, True), ("eve", eve, False)):
        workspace = _workspace(user, f"Anslutningar {name}", with_connections)
        made[name] = (workspace, Kernel(live_url, workspace["id"], user.headers))
    yield made
    for _, kernel in made.values():
        kernel.close()


def test_the_projects_workspace_gets_its_connections(
    kernels: dict[str, tuple[dict[str, Any], Kernel]],
) -> None:
    _, kernel = kernels["ana"]
    got = kernel.execute(
        "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
        "if k.startswith('BALSAM_CONN_')}))"
    )
    assert got.error is None, got
    env = json.loads(got.stdout)
    assert env["BALSAM_CONN_WAREHOUSE_PASSWORD"] == PASSWORD
    assert env["BALSAM_CONN_WAREHOUSE_DSN"] == (
        f"postgresql://ana:{PASSWORD}@db.example.org:5432/stat"
    )
    assert env["BALSAM_CONN_API_TOKEN"] == TOKEN
    assert env["BALSAM_CONN_API_URL"] == "https://api.example.org/"


def test_another_projects_workspace_reads_none_of_them(
    ctx: AppContext, kernels: dict[str, tuple[dict[str, Any], Kernel]]
) -> None:
    ana_workspace, _ = kernels["ana"]
    _, kernel = kernels["eve"]
    root = Path(ctx.providers.workspaces.root)  # type: ignore[attr-defined]
    ana_run = json.loads((root / ana_workspace["id"] / "run.json").read_text())
    data_dir = ctx.settings.data_dir.resolve()
    files = [
        f"/proc/{ana_run['pid']}/environ",
        str(data_dir / KEY_FILE),
        str(data_dir / "secrets" / "workspaces" / f"{ana_workspace['id']}.json"),
    ]
    url = make_url(ctx.settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        files.append(url.database)
    assert (data_dir / KEY_FILE).exists()
    setup = f"WANTED = {json.dumps([PASSWORD, TOKEN])}\nFILES = {json.dumps(files)}\n"
    got = kernel.execute(setup + PROBE)
    assert got.error is None, got
    seen = json.loads(got.stdout)
    assert seen["env"] == [], seen
    assert seen["leaks"] == [], seen
    # Each exists (checked above or alive) and is refused, not missing: no vacuous pass.
    assert set(seen["files"].values()) == {"denied"}, seen
