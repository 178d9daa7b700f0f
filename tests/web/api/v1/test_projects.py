"""Projects through the API: create, read, list, update, delete, bad input."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser


def test_create_returns_upstream_fields_and_a_working_project(
    alice: TestUser, ctx: AppContext, unique: Callable[[str], str]
) -> None:
    name = unique("Årsstatistik för Åland ")
    r = alice.client.post(
        "/api/v1/projects",
        json={"name": name, "description": "Quarterly figures", "branchName": "main"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("arsstatistik-for-aland")
    assert body["name"] == name
    assert body["authGroup"] == f"balsam-grp_{body['id']}"
    assert body["gitUrl"].endswith(f"/git/{body['id']}.git")
    assert set(body["credentials"]) == {"accessKey", "secretKey", "endpoint", "bucket", "region"}
    git, storage = ctx.providers.git, ctx.providers.storage
    assert git.list_branches(body["id"]) == ["main"]
    tree = {e.path for e in git.list_tree(body["id"], "main")}
    assert {"README.md", ".gitignore", ".gitattributes"} <= tree
    readme = git.read_file(body["id"], "main", "README.md").decode()
    assert name in readme and "Quarterly figures" in readme
    assert storage.list_keys(body["bucket"]) == ["main/readme.txt"]
    assert storage.key_exists(body["credentials"]["accessKey"])


def test_get_project(alice: TestUser, project: dict[str, Any]) -> None:
    r = alice.client.get(f"/api/v1/projects/{project['id']}")
    assert r.status_code == 200
    body = r.json()
    assert body["branches"] == [
        {"id": "main", "name": "main", "description": "", "isDefault": True}
    ]
    assert body["role"] == "owner" and body["description"] == "test"
    assert body["gitUrl"] == project["gitUrl"]


def test_duplicate_display_name_is_409(
    alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    for user, name in [
        (alice, project["name"]),
        (bob, project["name"].upper()),
        (bob, f"  {project['name']} "),
    ]:
        r = user.client.post("/api/v1/projects", json={"name": name, "branchName": "main"})
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/problem+json"


def test_names_that_transliterate_alike_get_distinct_ids_and_buckets(
    alice: TestUser, unique: Callable[[str], str]
) -> None:
    stem = unique("sa")
    ids = set()
    for name in [f"Å{stem}", f"Ä{stem}", f"A{stem}", f"a-{stem}"]:
        r = alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"})
        assert r.status_code == 201, r.text
        ids.add((r.json()["id"], r.json()["bucket"]))
    assert len(ids) == 4 and len({b for _, b in ids}) == 4


def test_list_mine_filter_and_paginate(
    alice: TestUser, bob: TestUser, unique: Callable[[str], str]
) -> None:
    tag = unique("zebra")
    made = []
    for i in range(3):
        r = alice.client.post("/api/v1/projects", json={"name": f"{tag} {i}", "branchName": "m"})
        made.append(r.json()["id"])
    page1 = alice.client.get("/api/v1/projects", params={"q": tag, "limit": 2}).json()
    page2 = alice.client.get("/api/v1/projects", params={"q": tag, "limit": 2, "offset": 2}).json()
    assert page1["total"] == 3 and len(page1["projects"]) == 2 and len(page2["projects"]) == 1
    assert {p["id"] for p in page1["projects"] + page2["projects"]} == set(made)
    for all_ in ("true", "false"):
        other = bob.client.get("/api/v1/projects", params={"q": tag, "all": all_}).json()
        assert other["projects"] == [] and other["total"] == 0


def test_admin_sees_every_project_with_all(admin: TestUser, project: dict[str, Any]) -> None:
    everything = admin.client.get("/api/v1/projects", params={"q": project["id"]}).json()
    assert [p["id"] for p in everything["projects"]] == [project["id"]]
    assert everything["projects"][0]["role"] is None
    mine = admin.client.get("/api/v1/projects", params={"q": project["id"], "all": "false"}).json()
    assert mine["projects"] == []


def test_update_description_owner_only(
    alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    url = f"/api/v1/projects/{project['id']}"
    alice.client.post(f"{url}/members", json={"username": bob.username, "role": "member"})
    assert bob.client.patch(url, json={"description": "x"}).status_code == 403
    r = alice.client.patch(url, json={"description": "new text"})
    assert r.status_code == 200 and r.json()["description"] == "new text"


def test_delete_removes_everything(
    alice: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    pid = project["id"]
    extra = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={}).json()
    r = alice.client.delete(f"/api/v1/projects/{pid}")
    assert r.status_code == 204
    assert not ctx.providers.git.repository_exists(pid)
    assert not ctx.providers.storage.bucket_exists(pid)
    for key in (project["credentials"]["accessKey"], extra["accessKey"]):
        assert not ctx.providers.storage.key_exists(key)
    assert alice.client.get(f"/api/v1/projects/{pid}").status_code == 404


def test_only_owner_or_admin_deletes(
    alice: TestUser, bob: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    url = f"/api/v1/projects/{project['id']}"
    alice.client.post(f"{url}/members", json={"username": bob.username, "role": "member"})
    assert bob.client.delete(url).status_code == 403
    assert admin.client.delete(url).status_code == 204


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "!!!", "branchName": "main"}, 422),
        ({"name": "🎉🎉🎉", "branchName": "main"}, 422),
        ({"name": "x" * 10_000, "branchName": "main"}, 422),
        ({"name": "", "branchName": "main"}, 422),
        ({"name": "ok name", "branchName": "a..b"}, 422),
        ({"name": "ok name", "branchName": "-x"}, 422),
        ({"name": "ok name", "branchName": "a/b"}, 422),
        ({"name": "ok name"}, 422),
        ({"name": 5, "branchName": "main"}, 422),
        ({"name": "ok name", "branchName": "main", "unknown": 1}, 422),
        ({"name": "ok name", "branchName": "main", "sourceLocation": "ext::sh -c id"}, 422),
        ({"name": "ok name", "branchName": "main", "sourceLocation": "/etc"}, 422),
        (
            {
                "name": "ok name",
                "branchName": "main",
                "sourceLocation": "file:///nonexistent/repo.git",
            },
            422,
        ),
        ([1, 2, 3], 422),
        ("just a string", 422),
    ],
)
def test_bad_create_input(alice: TestUser, ctx: AppContext, body: Any, status: int) -> None:
    before = _inventory(ctx)
    r = alice.client.post("/api/v1/projects", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and problem["detail"]
    assert _inventory(ctx) == before


def test_malformed_json_and_huge_bodies(alice: TestUser) -> None:
    r = alice.client.post(
        "/api/v1/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = alice.client.post(
        "/api/v1/projects",
        content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["status"] == 413


def test_a_chunked_body_over_the_limit_is_413(alice: TestUser, live_url: str) -> None:
    """Without Content-Length the limit is found while reading; still 413, not 400."""

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 64_000
        yield b'"}'

    r = httpx.post(
        f"{live_url}/api/v1/projects",
        content=chunks(),
        timeout=30,
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("name", ["Ελληνικά δεδομένα", "Lönestatistik 2024", "Data 🎉 party"])
def test_unicode_names_work(alice: TestUser, unique: Callable[[str], str], name: str) -> None:
    r = alice.client.post("/api/v1/projects", json={"name": unique(name), "branchName": "main"})
    assert r.status_code == 201, r.text
    assert r.json()["id"].isascii()


def _inventory(ctx: AppContext) -> tuple[int, int]:
    from sqlalchemy import func, select

    from balsam.db.models import Project

    with ctx.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(Project)) or 0
    repos = len(list((ctx.settings.data_dir / "git").glob("*.git")))
    return rows, repos


def _source_repo(root: Path, name: str) -> Path:
    repo = root / name
    repo.mkdir()
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    (repo / "analysis.R").write_text("x <- 1\n")
    (repo / "README.md").write_text("# Template\n")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "tpl"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    return repo


def test_create_from_file_source(
    alice: TestUser, ctx: AppContext, sources_root: Path, unique: Callable[[str], str]
) -> None:
    repo = _source_repo(sources_root, unique("tpl"))
    r = alice.client.post(
        "/api/v1/projects",
        json={
            "name": unique("From template "),
            "branchName": "main",
            "sourceLocation": f"file://{repo}",
        },
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    tree = {e.path for e in ctx.providers.git.list_tree(pid, "main")}
    assert {"analysis.R", "README.md", ".gitignore", ".gitattributes"} <= tree
    assert ctx.providers.git.read_file(pid, "main", "README.md") == b"# Template\n"
    got = alice.client.get(f"/api/v1/projects/{pid}").json()
    assert got["sourceLocation"] == f"file://{repo}"


def test_file_source_outside_allowed_roots_is_refused(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], unique: Callable[[str], str]
) -> None:
    other = ctx.settings.data_dir / "git" / f"{project['id']}.git"
    for url in (f"file://{other}", "file:///etc", f"file://{ctx.settings.data_dir}/../x"):
        r = alice.client.post(
            "/api/v1/projects",
            json={"name": unique("Stealer "), "branchName": "main", "sourceLocation": url},
        )
        assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.git",
        "http://localhost/x.git",
        "http://169.254.169.254/latest/meta-data/",
        "https://user:secret@8.8.8.8/x.git",
        "http://[::1/x.git",
    ],
)
def test_sources_on_the_servers_own_network_or_with_credentials_are_refused(
    alice: TestUser, unique: Callable[[str], str], url: str
) -> None:
    r = alice.client.post(
        "/api/v1/projects",
        json={"name": unique("Inward "), "branchName": "main", "sourceLocation": url},
    )
    assert r.status_code == 422, r.text
    assert "secret" not in r.text


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``target`` (a redirect, when set) and counts hits."""

    hits: list[str]
    target: str | None

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target + self.path)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _recorder(target: str | None) -> tuple[http.server.HTTPServer, list[str]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits, "target": target})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


def test_an_allowed_source_cannot_redirect_the_clone_inward(
    alice: TestUser, ctx: AppContext, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    internal, internal_hits = _recorder(None)
    public, public_hits = _recorder(f"http://127.0.0.1:{internal.server_port}")
    try:
        # Stand-in for a public host: allowed by name so the redirect is what is tested.
        monkeypatch.setattr(ctx.settings, "source_private_hosts", ["127.0.0.1"])
        r = alice.client.post(
            "/api/v1/projects",
            json={
                "name": unique("Bounced "),
                "branchName": "main",
                "sourceLocation": f"http://127.0.0.1:{public.server_port}/x.git",
            },
        )
        assert r.status_code == 422, r.text
        assert public_hits, "git never asked the source"
        assert internal_hits == []
    finally:
        internal.shutdown()
        public.shutdown()


def test_a_conflict_in_storage_or_git_is_a_409_without_internals(
    alice: TestUser, ctx: AppContext, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request takes the id between the choice and the repository."""
    git = ctx.providers.git
    real = git.create_repository
    taken: list[str] = []

    def racing(repo_id: str, **kwargs: Any) -> Any:
        real(repo_id, **kwargs)  # the other request wins
        taken.append(repo_id)
        return real(repo_id, **kwargs)

    monkeypatch.setattr(git, "create_repository", racing)
    r = alice.client.post(
        "/api/v1/projects", json={"name": unique("Kapplöpning "), "branchName": "main"}
    )
    monkeypatch.undo()
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert "repository" not in detail and taken[0] in detail and "try again" in detail
    assert not ctx.providers.storage.bucket_exists(taken[0])
    git.delete_repository(taken[0])
