"""Every project endpoint: anonymous → 401, non-member → 404 (nothing leaks),
member and owner as designed. The route list is checked against the app so a
new endpoint without a row here fails the suite."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.app import TestUser

CONNECTION = {"name": "api", "kind": "http", "url": "https://example.org/", "token": "t0ken"}

# (method, path template, body, status for member, status for owner)
# The branch "feature" and member "bob" exist; each row runs on a fresh project.
ROWS: list[tuple[str, str, Any, int, int]] = [
    ("GET", "/api/v1/projects/{p}", None, 200, 200),
    ("PATCH", "/api/v1/projects/{p}", {"description": "d"}, 403, 200),
    ("DELETE", "/api/v1/projects/{p}", None, 403, 204),
    ("GET", "/api/v1/projects/{p}/branches", None, 200, 200),
    ("POST", "/api/v1/projects/{p}/branches", {"name": "new"}, 201, 201),
    ("DELETE", "/api/v1/projects/{p}/branches/{b}", None, 403, 204),
    ("GET", "/api/v1/projects/{p}/branches/{b}/files", None, 200, 200),
    (
        "PUT",
        "/api/v1/projects/{p}/branches/{b}/files?libraryId={lib}&fileId=UmVzb3VyY2VzL1JFQURNRS5tZA",
        None,
        200,
        200,
    ),
    ("GET", "/api/v1/projects/{p}/branches/{b}/files/UkVBRE1FLm1k", None, 200, 200),
    ("GET", "/api/v1/projects/{p}/members", None, 200, 200),
    ("POST", "/api/v1/projects/{p}/members", {"username": "{carol}"}, 403, 201),
    ("PATCH", "/api/v1/projects/{p}/members/{bob}", {"role": "owner"}, 403, 200),
    ("DELETE", "/api/v1/projects/{p}/members/{bob}", None, 204, 204),
    ("GET", "/api/v1/projects/{p}/credentials", None, 200, 200),
    ("POST", "/api/v1/projects/{p}/credentials", {"name": "k"}, 201, 201),
    ("DELETE", "/api/v1/projects/{p}/credentials/{key}", None, 404, 204),
    ("GET", "/api/v1/projects/{p}/audit", None, 403, 200),
    # Data: members and owners alike (main/readme.txt is the branch's marker).
    ("GET", "/api/v1/projects/{p}/data?prefix=main/", None, 200, 200),
    ("GET", "/api/v1/projects/{p}/usage", None, 200, 200),
    ("GET", "/api/v1/projects/{p}/deleted?prefix=main/", None, 200, 200),
    ("GET", "/api/v1/projects/{p}/data/main/readme.txt", None, 200, 200),
    ("PUT", "/api/v1/projects/{p}/data/main/readme.txt", {"any": "body"}, 201, 201),
    ("DELETE", "/api/v1/projects/{p}/data/main/readme.txt", None, 204, 204),
    ("POST", "/api/v1/projects/{p}/data/main/readme.txt/restore", {"versionId": "x"}, 404, 404),
    ("POST", "/api/v1/projects/{p}/data/main/readme.txt/move", {"to": "main/ny.txt"}, 200, 200),
    # Resumable uploads: each member reaches only their own (none here: 404).
    ("POST", "/api/v1/projects/{p}/data/uploads", {"path": "main/u", "size": 3}, 201, 201),
    ("GET", "/api/v1/projects/{p}/uploads", None, 200, 200),
    ("GET", "/api/v1/projects/{p}/uploads/nope", None, 404, 404),
    ("PUT", "/api/v1/projects/{p}/uploads/nope/parts/1", {"any": "body"}, 404, 404),
    ("POST", "/api/v1/projects/{p}/uploads/nope/complete", None, 404, 404),
    ("DELETE", "/api/v1/projects/{p}/uploads/nope", None, 404, 404),
    # Storage quotas: administrators only, owners too are refused.
    ("PATCH", "/api/v1/projects/{p}", {"storageQuotaBytes": 5}, 403, 403),
    # Data connections: owners manage them, members see and use them.
    ("GET", "/api/v1/projects/{p}/connections", None, 200, 200),
    ("POST", "/api/v1/projects/{p}/connections", CONNECTION, 403, 201),
    ("GET", "/api/v1/projects/{p}/connections/{conn}", None, 200, 200),
    ("DELETE", "/api/v1/projects/{p}/connections/{conn}", None, 403, 204),
    # Imports: loopback is refused to everyone (tests/web/api/v1/test_imports.py imports).
    ("GET", "/api/v1/projects/{p}/imports", None, 200, 200),
    (
        "POST",
        "/api/v1/projects/{p}/imports",
        {"url": "http://127.0.0.1:9/", "target": "main/i"},
        422,
        422,
    ),
    ("GET", "/api/v1/projects/{p}/imports/no-such-import", None, 404, 404),
    # Runs: members and owners alike (tests/web/runs runs real ones; a missing file: 422).
    ("GET", "/api/v1/projects/{p}/runs", None, 200, 200),
    ("POST", "/api/v1/projects/{p}/runs", {"branchId": "main", "path": "none.py"}, 422, 422),
    ("GET", "/api/v1/projects/{p}/runs/nope", None, 404, 404),
    ("POST", "/api/v1/projects/{p}/runs/nope/cancel", None, 404, 404),
    ("GET", "/api/v1/projects/{p}/runs/nope/record", None, 404, 404),
    ("POST", "/api/v1/projects/{p}/runs/nope/rerun", {"mode": "exact"}, 404, 404),
    ("GET", "/api/v1/projects/{p}/runs/nope/comparison", None, 404, 404),
    ("GET", "/api/v1/projects/{p}/runs/nope/openlineage", None, 404, 404),
]


def _fill(text: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace("{" + k + "}", v)
    return text


def _call(
    client: httpx.Client, method: str, path: str, body: Any, values: dict[str, str]
) -> httpx.Response:
    if isinstance(body, dict):
        body = {k: _fill(v, values) if isinstance(v, str) else v for k, v in body.items()}
    return client.request(method, _fill(path, values), json=body)


@pytest.fixture
def setup(
    alice: TestUser,
    bob: TestUser,
    make_user: Any,
    project: dict[str, Any],
    scb_library: dict[str, Any],
) -> dict[str, str]:
    pid = project["id"]
    assert (
        alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "feature"}).status_code
        == 201
    )
    assert (
        alice.client.post(
            f"/api/v1/projects/{pid}/members", json={"username": bob.username}
        ).status_code
        == 201
    )
    carol = make_user("carol")
    assert (
        alice.client.post(
            f"/api/v1/projects/{pid}/connections", json={**CONNECTION, "name": "warehouse"}
        ).status_code
        == 201
    )
    return {
        "conn": "WAREHOUSE",
        "p": pid,
        "b": "feature",
        "bob": bob.username,
        "carol": carol.username,
        "key": project["credentials"]["accessKey"],
        "lib": scb_library["id"],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "member", "owner"), ROWS, ids=[f"{m} {p}" for m, p, *_ in ROWS]
)
def test_outsiders_are_refused(
    setup: dict[str, str],
    anon: httpx.Client,
    make_user: Any,
    method: str,
    path: str,
    body: Any,
    member: int,
    owner: int,
) -> None:
    r = _call(anon, method, path, body, setup)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = _call(make_user("mallory").client, method, path, body, setup)
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == f"No project '{setup['p']}'."


@pytest.mark.parametrize("role", ["member", "owner"])
@pytest.mark.parametrize(
    ("method", "path", "body", "member", "owner"), ROWS, ids=[f"{m} {p}" for m, p, *_ in ROWS]
)
def test_members_and_owners(
    setup: dict[str, str],
    alice: TestUser,
    bob: TestUser,
    method: str,
    path: str,
    body: Any,
    member: int,
    owner: int,
    role: str,
) -> None:
    client = bob.client if role == "member" else alice.client
    r = _call(client, method, path, body, setup)
    assert r.status_code == (member if role == "member" else owner), r.text


def test_unknown_project_and_others_project_look_the_same(
    setup: dict[str, str], make_user: Any
) -> None:
    stranger = make_user("eve")
    real = stranger.client.get(f"/api/v1/projects/{setup['p']}")
    fake = stranger.client.get("/api/v1/projects/does-not-exist")
    assert real.status_code == fake.status_code == 404
    assert real.json()["title"] == fake.json()["title"]


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    covered = {
        (
            m,
            p.split("?")[0]
            .replace("{p}", "{projectId}")
            .replace("{b}", "{branchId}")
            .replace("{bob}", "{username}")
            .replace("{key}", "{accessKey}")
            .replace("{conn}", "{name}")
            .replace("UkVBRE1FLm1k", "{fileId}")
            .replace("main/readme.txt", "{path}")
            .replace("/uploads/nope", "/uploads/{uploadId}")
            .replace("/parts/1", "/parts/{number}")
            .replace("no-such-import", "{importId}")
            .replace("/runs/nope", "/runs/{runId}"),
        )
        for m, p, *_ in ROWS
    }
    elsewhere = {
        "/api/v1/projects",
        "/api/v1/audit",
        "/api/v1/users",
        "/api/v1/users/me",
        "/api/v1/users/me/tokens",
        "/api/v1/users/me/tokens/{token_id}",
        "/api/v1/users/{username}",
        "/api/v1/users/{username}/groups",  # tests/web/test_oidc.py
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/health",
        "/api/v1/health/ready",
    }
    # The OpenAPI document lists every route, however routers are nested
    # (app.routes holds included routers, not their routes).
    paths = app.openapi()["paths"]
    assert "/api/v1/projects/{projectId}" in paths
    for path, operations in paths.items():
        for method in operations:
            # Users, auth, audit, health, libraries, search and workspaces have permission
            # tests of their own.
            if path in elsewhere or path.startswith(
                (
                    "/api/v1/knowledge-libraries",
                    "/api/v1/search",
                    "/api/v1/workspaces",
                    "/api/v1/templates",
                )
            ):
                continue
            assert (method.upper(), path) in covered, f"{method} {path} has no row"
