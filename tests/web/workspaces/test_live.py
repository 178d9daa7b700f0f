"""A real workspace, end to end: JupyterLab through the proxy, a kernel over its
WebSocket, the project's data and repository from inside, stop and start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import Kernel, wait_state


@pytest.fixture(scope="module")
def owner(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    from tests.fixtures.app import _make_user
    user = _make_user(ctx, app, "wsowner", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def ws_project(owner: TestUser) -> dict[str, Any]:
    response = owner.client.post("/api/v1/projects", json={
        "name": "Arbetsyta test", "description": "", "branchName": "main"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def workspace(owner: TestUser, ws_project: dict[str, Any], supervisor: Any) -> dict[str, Any]:
    response = owner.client.post("/api/v1/workspaces", json={
        "name": "Min miljö", "templateId": "python", "projectId": ws_project["id"],
        "branchId": "main"})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["state"] == "pending"
    assert created["url"] == f"/workspaces/{created['id']}/"
    return wait_state(owner, created["id"], "running")


@pytest.fixture(scope="module")
def kernel(live_url: str, owner: TestUser, workspace: dict[str, Any]) -> Iterator[Kernel]:
    k = Kernel(live_url, workspace["id"], owner.headers)
    yield k
    k.close()


def test_status_through_the_proxy(live_url: str, owner: TestUser,
                                  workspace: dict[str, Any]) -> None:
    response = httpx.get(f"{live_url}{workspace['url']}api/status", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert "started" in response.json()


def test_kernel_runs_code(kernel: Kernel) -> None:
    result = kernel.execute("print(6 * 7)")
    assert result.error is None
    assert result.stdout.strip() == "42"
