"""Branches (git branch + data prefix) and reading files through git."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser


def test_create_list_delete_branch(
    alice: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    pid = project["id"]
    r = alice.client.post(
        f"/api/v1/projects/{pid}/branches",
        json={"name": "dev", "description": "work", "fromBranch": "main"},
    )
    assert r.status_code == 201 and r.json() == {"id": "dev", "projectId": pid, "name": "dev"}
    assert sorted(ctx.providers.git.list_branches(pid)) == ["dev", "main"]
    assert "dev/readme.txt" in ctx.providers.storage.list_keys(pid)
    branches = alice.client.get(f"/api/v1/projects/{pid}").json()["branches"]
    assert [(b["id"], b["isDefault"], b["description"]) for b in branches] == [
        ("main", True, ""),
        ("dev", False, "work"),
    ]
    ctx.providers.storage.put_object(pid, "dev/data/x.csv", b"a,b\n")
    assert alice.client.delete(f"/api/v1/projects/{pid}/branches/dev").status_code == 204
    assert ctx.providers.git.list_branches(pid) == ["main"]
    assert ctx.providers.storage.list_keys(pid) == ["main/readme.txt"]


def test_branch_from_another_branch_has_its_commits(
    alice: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    from balsam.providers.git.base import Author

    pid = project["id"]
    alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "a"})
    ctx.providers.git.commit_files(
        pid, "a", {"only-on-a.txt": b"x"}, message="m", author=Author("t", "t@example.org")
    )
    alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "b", "fromBranch": "a"})
    paths = {e.path for e in ctx.providers.git.list_tree(pid, "b")}
    assert "only-on-a.txt" in paths


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "main"}, 409),
        ({"name": "x", "fromBranch": "nope"}, 422),
        ({"name": "bad name"}, 422),
        ({"name": "a..b"}, 422),
        ({"name": "../etc"}, 422),
        ({"name": "x.lock"}, 422),
        ({}, 422),
    ],
)
def test_bad_branches(alice: TestUser, project: dict[str, Any], body: Any, status: int) -> None:
    r = alice.client.post(f"/api/v1/projects/{project['id']}/branches", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_default_branch_cannot_be_deleted(alice: TestUser, project: dict[str, Any]) -> None:
    pid = project["id"]
    assert alice.client.delete(f"/api/v1/projects/{pid}/branches/main").status_code == 409
    assert alice.client.delete(f"/api/v1/projects/{pid}/branches/nope").status_code == 404


def test_list_and_read_files(alice: TestUser, ctx: AppContext, project: dict[str, Any]) -> None:
    from balsam.providers.git.base import Author

    pid = project["id"]
    ctx.providers.git.commit_files(
        pid,
        "main",
        {"data/ö #%?.csv": b"a;b\n1;2\n", "nb/x.ipynb": b"{}"},
        message="add",
        author=Author("t", "t@example.org"),
    )
    files = alice.client.get(f"/api/v1/projects/{pid}/branches/main/files").json()
    by_path = {f["path"]: f for f in files}
    assert by_path["data"]["type"] == "Folder" and by_path["data"]["contentUrl"] is None
    weird = by_path["data/ö #%?.csv"]
    assert weird["name"] == "ö #%?.csv" and weird["type"] == "File"
    r = alice.client.get(weird["contentUrl"].replace(str(ctx.settings.resolved_public_url), ""))
    assert r.status_code == 200 and r.content == b"a;b\n1;2\n"
    assert r.headers["content-type"].startswith("text/csv")
    readme = alice.client.get(
        f"/api/v1/projects/{pid}/branches/main/files/{by_path['README.md']['id']}"
    )
    assert readme.text.startswith("# ")


def _id(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "file_id",
    [
        _id("../../../../etc/passwd"),
        _id("/etc/passwd"),
        _id("data"),
        _id("nope.txt"),
        _id("README.md\x00"),
        "..",
        "%2e%2e",
        "%2e%2e%2fetc%2fpasswd",
        "..%2f..%2fetc",
        base64.b64encode(b"/etc/passwd").decode(),
        "not base64!",
    ],
)
def test_traversal_and_bad_file_ids_are_404(
    alice: TestUser, project: dict[str, Any], file_id: str
) -> None:
    r = alice.client.get(f"/api/v1/projects/{project['id']}/branches/main/files/{file_id}")
    # A bare ".." is folded away by the client (…/branches/main, which only takes DELETE).
    assert r.status_code == (405 if file_id == ".." else 404), r.text
    assert "root:" not in r.text


def test_files_of_unknown_branch(alice: TestUser, project: dict[str, Any]) -> None:
    r = alice.client.get(f"/api/v1/projects/{project['id']}/branches/nope/files")
    assert r.status_code == 404
