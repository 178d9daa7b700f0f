"""Workspaces where Balsam is not root: they run as Balsam's own user, so by
default for one Balsam user only (the owner of the earliest workspace); others get
409 unless an admin sets ``workspaces.single_uid_for_all_users``; the API says
``isolation: "none"`` either way.

Not being root is simulated on the real local provider (``isolates_users``, the
seam the service reads); the workspaces are real."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from balsam import wiring
from balsam.context import AppContext
from balsam.db.models import Workspace
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import wait_state
from tests.web.api.v1.test_users_auth import assert_problem

API = "/api/v1"


def _project(user: TestUser) -> str:
    created = user.client.post(
        f"{API}/projects",
        json={"name": f"Ensam {user.username}", "description": "", "branchName": "main"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _create(user: TestUser, project_id: str) -> Any:
    return user.client.post(
        f"{API}/workspaces",
        json={"name": "Delad", "templateId": "python", "projectId": project_id, "branchId": "main"},
    )


def test_one_user_only_unless_an_admin_says_so(
    ctx: AppContext,
    supervisor: Any,
    alice: TestUser,
    bob: TestUser,
    admin: TestUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ctx.sessions() as session:
        assert session.scalars(select(Workspace.id)).all() == [], "other modules' workspaces"
    alices, bobs = _project(alice), _project(bob)
    first = _create(alice, alices)
    assert first.status_code == 201, first.text
    assert first.json()["isolation"] == "per-workspace"  # as root
    earlier = _create(bob, bobs)  # while workspaces were isolated
    assert earlier.status_code == 201, earlier.text
    wait_state(bob, earlier.json()["id"], "running")
    bob.client.post(f"{API}/workspaces/{earlier.json()['id']}/stop")
    wait_state(bob, earlier.json()["id"], "stopped")

    monkeypatch.setattr(ctx.providers.workspaces, "isolates_users", False)
    refused = assert_problem(_create(bob, bobs), 409)
    assert refused["reason"] == "workspaces-not-isolated"
    assert "root" in refused["detail"]
    restart = bob.client.post(f"{API}/workspaces/{earlier.json()['id']}/start")
    assert assert_problem(restart, 409)["reason"] == "workspaces-not-isolated"
    second = _create(alice, alices)  # the first user keeps their workspaces
    assert second.status_code == 201, second.text
    assert second.json()["isolation"] == "none"
    shown = admin.client.get(f"{API}/workspaces/{first.json()['id']}").json()
    assert shown["isolation"] == "none"

    monkeypatch.setattr(ctx.settings.workspaces, "single_uid_for_all_users", True)
    restart = bob.client.post(f"{API}/workspaces/{earlier.json()['id']}/start")
    assert restart.status_code == 202, restart.text
    for user, body in ((alice, first), (alice, second), (bob, earlier)):
        wait_state(user, body.json()["id"], "running", "stopped", "failed")
        assert user.client.delete(f"{API}/workspaces/{body.json()['id']}").status_code == 204


def test_startup_says_whether_workspaces_are_shared(
    ctx: AppContext, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ctx.settings
    with caplog.at_level(logging.INFO, logger="balsam.wiring"):
        wiring._log_unisolated(settings)
        monkeypatch.setattr(settings.workspaces, "single_uid_for_all_users", True)
        wiring._log_unisolated(settings)
    info, warning = caplog.records[-2:]
    assert info.levelno == logging.INFO and "one Balsam user only" in info.getMessage()
    assert warning.levelno == logging.WARNING and "UNSAFE" in warning.getMessage()
