"""A profile stored before the API refused hostile values (old data) still reaches a
real workspace's ``~/.gitconfig`` only as literal values: no section of its own,
no command git would run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import update

from balsam.context import AppContext
from balsam.db.models import User
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import wait_state

MARKER = Path("/tmp/balsam-gitconfig-injection-ran")
EMAIL = f'a@b.c"\n[core]\n\tfsmonitor = "touch {MARKER}"'
NAME = f'Eve"\n[core]\n\tpager = "touch {MARKER}" #'


def _get(config: Path, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "config", "--file", str(config), "--get", key],
        capture_output=True,
        text=True,
        check=False,
    )


def test_hostile_stored_profile_stays_literal(
    ctx: AppContext, supervisor: Any, alice: TestUser, project: dict[str, Any]
) -> None:
    MARKER.unlink(missing_ok=True)
    with ctx.sessions() as session, session.begin():  # as an earlier release stored it
        session.execute(
            update(User)
            .where(User.username == alice.username)
            .values(email=EMAIL, display_name=NAME)
        )
    created = alice.client.post(
        "/api/v1/workspaces",
        json={
            "name": "Git",
            "templateId": "python",
            "projectId": project["id"],
            "branchId": "main",
        },
    )
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    try:
        wait_state(alice, workspace_id, "running")
        home = ctx.providers.workspaces.root / workspace_id / "home"  # type: ignore[attr-defined]
        config = home / ".gitconfig"
        assert _get(config, "user.email").stdout == EMAIL + "\n"
        assert _get(config, "user.name").stdout == NAME + "\n"
        assert _get(config, "core.fsmonitor").returncode == 1
        assert _get(config, "core.pager").returncode == 1
        assert not MARKER.exists()
    finally:
        alice.client.delete(f"/api/v1/workspaces/{workspace_id}")
