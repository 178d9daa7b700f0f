"""Reusing library content: copy a resource into a project branch; start a
project from a template or an example project (SCB's real library)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from balsam.context import AppContext
from balsam.domain.projects.naming import encode_file_id
from tests.fixtures.app import TestUser
from tests.fixtures.library import SCB_LIBRARY, file_url, make_repo

RESOURCE = "Resources/Produktionsflöden"
EXAMPLE = "ExampleProjects/Hämta data från dataportal.se"


def copy_url(
    project_id: str, library_id: str, path: str, branch: str = "main", overwrite: bool = False
) -> str:
    return (
        f"/api/v1/projects/{project_id}/branches/{branch}/files?libraryId={library_id}"
        f"&fileId={encode_file_id(path)}" + ("&overwrite=true" if overwrite else "")
    )


def library_files(folder: str) -> dict[str, bytes]:
    root = SCB_LIBRARY / folder
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_copy_resource_folder_exactly(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], scb_library: dict[str, Any]
) -> None:
    pid, lib = project["id"], scb_library["id"]
    r = alice.client.put(copy_url(pid, lib, RESOURCE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["libraryCommit"] == scb_library["lastSyncedCommit"]
    git = ctx.providers.git
    tree = {e.path for e in git.list_tree(pid, "main") if e.type == "File"}
    copied = {p.removeprefix(RESOURCE + "/") for p in tree if p.startswith(RESOURCE + "/")}
    expected = library_files(RESOURCE)
    assert copied == set(expected)
    assert set(body["files"]) == {f"{RESOURCE}/{p}" for p in expected}
    for rel, content in expected.items():
        assert git.read_file(pid, "main", f"{RESOURCE}/{rel}") == content, rel
    assert not any("Resurser/Resurser" in p for p in tree)
    log = subprocess.run(
        [
            "git",
            f"--git-dir={git.repository_path(pid)}",
            "log",
            "-1",  # type: ignore[attr-defined]
            "--format=%an%n%ae%n%B",
            "main",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert alice.username in log and scb_library["name"] in log
    assert scb_library["lastSyncedCommit"] in log


def test_copy_again_is_409_unless_overwrite(
    alice: TestUser, project: dict[str, Any], scb_library: dict[str, Any]
) -> None:
    url = copy_url(project["id"], scb_library["id"], RESOURCE)
    assert alice.client.put(url).status_code == 200
    again = alice.client.put(url)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert alice.client.put(url + "&overwrite=true").status_code == 200


def test_copy_single_file_and_onto_another_branch(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], scb_library: dict[str, Any]
) -> None:
    pid = project["id"]
    alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "dev"})
    path = "Resources/Datalagring - Minio-s3/Python-S3.ipynb"
    r = alice.client.put(copy_url(pid, scb_library["id"], path, branch="dev"))
    assert r.status_code == 200, r.text
    assert r.json()["files"] == [path]
    assert ctx.providers.git.read_file(pid, "dev", path) == (SCB_LIBRARY / path).read_bytes()
    main = {e.path for e in ctx.providers.git.list_tree(pid, "main")}
    assert path not in main


def test_copy_outside_resources_lands_under_resources(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], scb_library: dict[str, Any]
) -> None:
    r = alice.client.put(copy_url(project["id"], scb_library["id"], EXAMPLE))
    assert r.status_code == 200, r.text
    name = EXAMPLE.split("/")[-1]
    assert all(p.startswith(f"Resources/{name}/") for p in r.json()["files"])


def test_who_may_copy(
    alice: TestUser,
    bob: TestUser,
    make_user: Any,
    anon: Any,
    project: dict[str, Any],
    scb_library: dict[str, Any],
) -> None:
    url = copy_url(project["id"], scb_library["id"], "Resources/README.md")
    assert anon.put(url).status_code == 401
    assert make_user("eve").client.put(url).status_code == 404
    alice.client.post(f"/api/v1/projects/{project['id']}/members", json={"username": bob.username})
    assert bob.client.put(url).status_code == 200


@pytest.mark.parametrize(
    ("library", "path", "status"),
    [
        ("no-such-library", "Resources/README.md", 404),
        (None, "Resources/Nope", 404),
        (None, "../../etc/passwd", 404),
        (None, "/etc/passwd", 404),
    ],
)
def test_bad_copies(
    alice: TestUser,
    project: dict[str, Any],
    scb_library: dict[str, Any],
    library: str | None,
    path: str,
    status: int,
) -> None:
    r = alice.client.put(copy_url(project["id"], library or scb_library["id"], path))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_copy_to_unknown_branch(
    alice: TestUser, project: dict[str, Any], scb_library: dict[str, Any]
) -> None:
    r = alice.client.put(copy_url(project["id"], scb_library["id"], RESOURCE, branch="nope"))
    assert r.status_code == 404


def test_project_from_example(
    alice: TestUser, ctx: AppContext, scb_library: dict[str, Any], unique: Callable[[str], str]
) -> None:
    r = alice.client.post(
        "/api/v1/projects",
        json={
            "name": unique("Dataportal "),
            "branchName": "main",
            "source": {"libraryId": scb_library["id"], "path": EXAMPLE},
        },
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    git = ctx.providers.git
    for rel, content in library_files(EXAMPLE).items():
        assert git.read_file(pid, "main", rel) == content, rel
    assert {".gitignore", ".gitattributes"} <= {e.path for e in git.list_tree(pid, "main")}
    got = alice.client.get(f"/api/v1/projects/{pid}").json()
    assert got["sourceLocation"].startswith(f"library:{scb_library['id']}/{EXAMPLE}@")
    log = subprocess.run(
        [
            "git",
            f"--git-dir={git.repository_path(pid)}",
            "log",  # type: ignore[attr-defined]
            "--format=%B",
            "main",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert EXAMPLE in log and log.count("Create project") == 1


def test_project_from_template(
    alice: TestUser,
    admin: TestUser,
    ctx: AppContext,
    sources_root: Path,
    unique: Callable[[str], str],
) -> None:
    template_repo = make_repo(sources_root / unique("tpl"), {"main.py": b"print(1)\n"})
    library_repo = make_repo(
        sources_root / unique("lib"),
        {
            "Templates/good.json": json.dumps(
                {"name": "Good", "git": file_url(template_repo), "description": "d", "tags": ["x"]}
            ).encode(),
            "Templates/outside.json": json.dumps({"name": "Out", "git": "file:///etc"}).encode(),
            "Templates/broken.json": b"{not json",
        },
    )
    lib = admin.client.post(
        "/api/v1/knowledge-libraries",
        json={
            "name": unique("Templates "),
            "repositoryUrl": file_url(library_repo),
            "branch": "main",
        },
    ).json()
    from balsam.domain.library.service import LibraryService

    LibraryService(ctx).sync(lib["id"])

    def create(path: str) -> Any:
        return alice.client.post(
            "/api/v1/projects",
            json={
                "name": unique("From tpl "),
                "branchName": "main",
                "source": {"libraryId": lib["id"], "path": path},
            },
        )

    r = create("Templates/good.json")
    assert r.status_code == 201, r.text
    assert ctx.providers.git.read_file(r.json()["id"], "main", "main.py") == b"print(1)\n"
    for path in (
        "Templates/outside.json",
        "Templates/broken.json",
        "Templates/none.json",
        "README.md",
    ):
        assert create(path).status_code == 422, path


@pytest.mark.parametrize(
    "body",
    [
        {"source": {"libraryId": "nope", "path": EXAMPLE}},
        {"source": {"libraryId": "x"}},
        {"source": "ExampleProjects/x"},
        {"source": {"libraryId": "x", "path": EXAMPLE}, "sourceLocation": "https://example.org/x"},
    ],
)
def test_bad_sources(alice: TestUser, unique: Callable[[str], str], body: dict[str, Any]) -> None:
    r = alice.client.post(
        "/api/v1/projects", json={"name": unique("Bad src "), "branchName": "main", **body}
    )
    assert r.status_code == 422, r.text
