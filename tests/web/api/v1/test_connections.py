"""The connections API: owners create and delete, members list and read, others
get 404 and anonymous callers 401; bad input is a 422 problem; the secret is never
in an answer, the database row, the audit trail or the logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select, text

from balsam.context import AppContext
from balsam.db.models import AuditEvent
from tests.fixtures.app import TestUser

SECRETS = ("pg-Hemlis-91x", "s3-Hemlis-92y", "tok-Hemlis-93z")
PG = {
    "name": "warehouse",
    "kind": "postgresql",
    "host": "db.example.org",
    "port": 5433,
    "database": "stat",
    "user": "ana",
    "password": SECRETS[0],
}
S3 = {
    "name": "archive",
    "kind": "s3",
    "endpoint": "https://s3.example.org",
    "bucket": "old-data",
    "region": "eu-north-1",
    "accessKeyId": "AKIAEXAMPLE",
    "secretAccessKey": SECRETS[1],
}
HTTP = {"name": "Api_2", "kind": "http", "url": "https://api.example.org/v1", "token": SECRETS[2]}


@pytest.fixture
def shared(alice: TestUser, bob: TestUser, project: dict[str, Any]) -> str:
    """Alice's project with Bob as a member; its id."""
    pid: str = project["id"]
    added = alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    assert added.status_code == 201, added.text
    return pid


def _no_secret(*texts: str) -> None:
    for body in texts:
        for secret in SECRETS:
            assert secret not in body


def test_owners_create_members_read_nobody_sees_a_secret(
    ctx: AppContext,
    alice: TestUser,
    bob: TestUser,
    shared: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base = f"/api/v1/projects/{shared}/connections"
    answers = []
    for body in (PG, S3, HTTP):
        created = alice.client.post(base, json=body)
        assert created.status_code == 201, created.text
        assert created.json()["secretSet"] is True
        answers.append(created.text)
    pg = answers[0]
    assert '"name":"WAREHOUSE"' in pg and '"port":"5433"' in pg
    assert "BALSAM_CONN_WAREHOUSE_DSN" in pg

    listed = bob.client.get(base)
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["connections"]] == ["API_2", "ARCHIVE", "WAREHOUSE"]
    got = bob.client.get(f"{base}/archive")
    assert got.status_code == 200
    assert got.json()["settings"] == {
        "endpoint": "https://s3.example.org",
        "bucket": "old-data",
        "region": "eu-north-1",
        "accessKeyId": "AKIAEXAMPLE",
    }
    answers += [listed.text, got.text]

    assert bob.client.post(base, json={**HTTP, "name": "mine"}).status_code == 403
    assert bob.client.delete(f"{base}/ARCHIVE").status_code == 403
    assert alice.client.delete(f"{base}/ARCHIVE").status_code == 204
    assert bob.client.get(f"{base}/ARCHIVE").status_code == 404
    assert alice.client.delete(f"{base}/ARCHIVE").status_code == 404

    with ctx.sessions() as session:
        rows = session.execute(
            text("SELECT * FROM data_connections WHERE project_id = :p"), {"p": shared}
        ).all()
        audit = session.scalars(select(AuditEvent).where(AuditEvent.project_id == shared)).all()
    assert len(rows) == 2
    actions = [e.action for e in audit if e.outcome == "success"]
    assert actions.count("connection.create") == 3 and actions.count("connection.delete") == 1
    denied = {e.action for e in audit if e.outcome == "denied"}
    assert denied == {"connection.create", "connection.delete"}
    _no_secret(*answers, repr(rows), *(repr(e.details) for e in audit), caplog.text)


def test_outsiders_get_nothing(
    alice: TestUser, anon: Any, make_user: Any, project: dict[str, Any]
) -> None:
    base = f"/api/v1/projects/{project['id']}/connections"
    assert alice.client.post(base, json=HTTP).status_code == 201
    eve = make_user("eve").client
    for method, url, body in (
        ("GET", base, None),
        ("GET", f"{base}/API_2", None),
        ("POST", base, {**HTTP, "name": "other"}),
        ("DELETE", f"{base}/API_2", None),
    ):
        assert anon.request(method, url, json=body).status_code == 401
        refused = eve.request(method, url, json=body)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert alice.client.get(f"{base}/API_2").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {**HTTP, "name": "1abc"},
        {**HTTP, "name": "my-api"},
        {**HTTP, "name": "p\u0131"},
        {**HTTP, "name": "A" * 41},
        {**HTTP, "name": ""},
        {**HTTP, "kind": "mysql"},
        {k: v for k, v in HTTP.items() if k != "kind"},
        {k: v for k, v in HTTP.items() if k != "token"},
        {**HTTP, "token": ""},
        {**HTTP, "url": "file:///etc/passwd"},
        {**HTTP, "url": "https://user:pw@example.org"},
        {**HTTP, "password": "x"},
        {**PG, "host": "/var/run/postgresql"},
        {**PG, "port": 70000},
        {**PG, "port": "5432"},
        {**PG, "user": "ana\nHOST=x"},
        {**S3, "endpoint": "s3.example.org"},
    ],
)
def test_bad_input_is_a_422_problem_that_repeats_no_secret(
    alice: TestUser, project: dict[str, Any], body: dict[str, Any]
) -> None:
    r = alice.client.post(f"/api/v1/projects/{project['id']}/connections", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    _no_secret(r.text)


def test_a_name_is_unique_in_its_project_whatever_its_case(
    alice: TestUser, project: dict[str, Any]
) -> None:
    base = f"/api/v1/projects/{project['id']}/connections"
    assert alice.client.post(base, json=HTTP).status_code == 201
    again = alice.client.post(base, json={**PG, "name": "api_2"})
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"
    _no_secret(again.text)
    assert alice.client.get(f"{base}/api_2").json()["kind"] == "http"


def test_connections_go_with_their_project(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    pid = project["id"]
    base = f"/api/v1/projects/{pid}/connections"
    assert alice.client.post(base, json={**HTTP, "name": "api_i"}).status_code == 201
    assert alice.client.get(f"{base}/api_i").status_code == 200
    assert alice.client.get(f"{base}/api_\u0131").status_code == 404  # dotless i
    assert alice.client.delete(f"/api/v1/projects/{pid}").status_code == 204
    with ctx.sessions() as session:
        left = session.execute(
            text("SELECT count(*) FROM data_connections WHERE project_id = :p"), {"p": pid}
        ).scalar()
    assert left == 0
