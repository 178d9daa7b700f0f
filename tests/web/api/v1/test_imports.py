"""The import API against the real SeaweedFS and a real HTTP server on loopback: an
import arrives whole with its size, SHA-256 and provenance; failures and refusals are
visible and leave nothing; bad input is problem+json; only members reach it."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from balsam.app import create_app
from balsam.context import AppContext
from balsam.db.models import AuditEvent
from balsam.settings import ImportSettings
from balsam.wiring import derive
from tests.fixtures.app import TestUser
from tests.fixtures.http_source import Answer, Source, http_source, import_worker_paused
from tests.fixtures.postgres import PrivatePostgres
from tests.fixtures.server import free_port


@pytest.fixture(scope="module")
def allowing_app(app: FastAPI, ctx: AppContext) -> Iterator[FastAPI]:
    """An app on the same database and storage, allowing 'localhost' (where the test's
    source listens) and with a small size limit; served without its lifespan, so an
    import runs right after the answer to its POST."""
    settings = ctx.settings.model_copy(
        update={
            "source_private_hosts": ["localhost"],
            "imports": ImportSettings(max_bytes=100_000, connect_timeout_seconds=2),
        }
    )
    with import_worker_paused(app):
        yield create_app(settings, ctx=derive(ctx, settings=settings))


@pytest.fixture
def as_alice(allowing_app: FastAPI, alice: TestUser) -> Iterator[httpx.Client]:
    # Not entered: the app's lifespan (its workers) stays off.
    client = TestClient(allowing_app, raise_server_exceptions=False, headers=alice.headers)
    yield client
    client.close()


@pytest.fixture
def source() -> Iterator[Source]:
    with http_source() as served:
        yield served


def _imports(project: dict[str, Any]) -> str:
    return f"/api/v1/projects/{project['id']}/imports"


def _ended(client: httpx.Client, project: dict[str, Any], import_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = client.get(f"{_imports(project)}/{import_id}").json()
        if body["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def _start(
    client: httpx.Client, project: dict[str, Any], url: str, target: str, **more: Any
) -> dict[str, Any]:
    answer = client.post(_imports(project), json={"url": url, "target": target, **more})
    assert answer.status_code == 202, answer.text
    created: dict[str, Any] = answer.json()
    assert created["state"] == "queued" and created["url"] == url
    return _ended(client, project, created["id"])


def test_an_import_arrives_with_its_size_checksum_and_provenance(
    ctx: AppContext,
    as_alice: httpx.Client,
    alice: TestUser,
    project: dict[str, Any],
    source: Source,
) -> None:
    body = "år;värde\n2024;1\n".encode() * 1000
    source.answers["/stat/data.csv"] = Answer(body=body, headers={"Content-Type": "text/csv"})
    url = source.url("/stat/data.csv", "localhost")
    done = _start(as_alice, project, url, "main/import/data.csv")
    assert done["state"] == "succeeded", done
    assert done["size"] == len(body) and done["sha256"] == hashlib.sha256(body).hexdigest()
    assert done["createdBy"] == alice.username and done["target"] == "main/import/data.csv"
    assert done["error"] is None and done["createdAt"] and done["finishedAt"]

    data = f"/api/v1/projects/{project['id']}/data/main/import/data.csv"
    got = alice.client.get(data)
    assert got.status_code == 200 and got.content == body
    provenance = alice.client.get(data, params={"provenance": "true"}).json()
    assert provenance["source"] == url and provenance["uploadedBy"] == alice.username
    assert provenance["sha256"] == done["sha256"] and provenance["contentType"] == "text/csv"
    with ctx.sessions() as session:
        outcomes = session.scalars(
            select(AuditEvent.details).where(
                AuditEvent.project_id == project["id"], AuditEvent.action == "data.import"
            )
        ).all()
    assert [d["state"] for d in outcomes] == ["queued", "succeeded"]


def test_imports_are_listed_newest_first(
    as_alice: httpx.Client, project: dict[str, Any], source: Source
) -> None:
    source.answers["/a"] = Answer(body=b"a")
    first = _start(as_alice, project, source.url("/a", "localhost"), "main/a")
    second = _start(as_alice, project, source.url("/missing", "localhost"), "main/b")
    listing = as_alice.get(_imports(project)).json()["items"]
    assert [i["id"] for i in listing] == [second["id"], first["id"]]
    assert [i["state"] for i in listing] == ["failed", "succeeded"]


def test_an_import_into_tmp_expires(
    as_alice: httpx.Client, alice: TestUser, project: dict[str, Any], source: Source
) -> None:
    source.answers["/t"] = Answer(body=b"t")
    done = _start(as_alice, project, source.url("/t", "localhost"), "tmp/t", expiresInDays=2)
    assert done["state"] == "succeeded", done
    listing = alice.client.get(
        f"/api/v1/projects/{project['id']}/data", params={"prefix": "tmp/"}
    ).json()
    [item] = listing["items"]
    assert item["path"] == "tmp/t" and item["expiresAt"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(404, b"no"), "HTTP 404"),
        (Answer(500, b"broken"), "HTTP 500"),
        (Answer(body=b"x" * 100_001), "larger than"),
        (Answer(body=b"x" * 100_001, chunked=True), "larger than"),
    ],
)
def test_a_failed_import_says_why_and_leaves_nothing(
    ctx: AppContext,
    as_alice: httpx.Client,
    project: dict[str, Any],
    source: Source,
    answer: Answer,
    error: str,
) -> None:
    source.answers["/f"] = answer
    done = _start(as_alice, project, source.url("/f", "localhost"), "main/f")
    assert done["state"] == "failed" and error in done["error"], done
    assert done["size"] is None and done["sha256"] is None
    assert ctx.providers.storage.objects.head(project["bucket"], "main/f") is None


def test_a_redirect_from_an_allowed_host_to_a_private_address_fails(
    as_alice: httpx.Client, project: dict[str, Any], source: Source
) -> None:
    with http_source() as inner:
        inner.answers["/admin"] = Answer(body=b"internal")
        source.answers["/r"] = Answer(301, headers={"Location": inner.url("/admin")})
        done = _start(as_alice, project, source.url("/r", "localhost"), "main/r")
        assert done["state"] == "failed" and "private or local" in done["error"], done
        assert inner.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://127.0.0.1:9/x", "target": "main/x"},
        {"url": "http://localhost:9/x", "target": "main/x"},
        {"url": "http://a:b@example.org/x", "target": "main/x"},
        {"url": "ftp://example.org/x", "target": "main/x"},
        {"url": "http://[::1", "target": "main/x"},
        {"url": "http://example.org:99999/x", "target": "main/x"},
        {"url": "http://exa mple.org/x", "target": "main/x"},
        {"url": "http://127.0.0.1:9/x", "target": "main/../x"},
        {"url": "http://127.0.0.1:9/x", "target": "main/"},
        {"url": "http://127.0.0.1:9/x", "target": "main/x", "expiresInDays": 3},
        {"url": "http://127.0.0.1:9/x"},
        {"url": 7, "target": "main/x"},
    ],
)
def test_bad_input_is_problem_json(
    alice: TestUser, project: dict[str, Any], body: dict[str, Any]
) -> None:
    # The session's app: nothing allowed beyond public addresses.
    answer = alice.client.post(_imports(project), json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["status"] == 422


def test_an_unknown_import_is_404(alice: TestUser, project: dict[str, Any]) -> None:
    answer = alice.client.get(f"{_imports(project)}/no-such-import")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_only_members_and_admins_reach_imports(
    as_alice: httpx.Client,
    allowing_app: FastAPI,
    make_user: Callable[..., TestUser],
    admin: TestUser,
    project: dict[str, Any],
    source: Source,
) -> None:
    source.answers["/m"] = Answer(body=b"m")
    done = _start(as_alice, project, source.url("/m", "localhost"), "main/m")
    stranger = make_user("stranger")
    c = TestClient(allowing_app, raise_server_exceptions=False, headers=stranger.headers)
    for answer in (
        c.get(_imports(project)),
        c.get(f"{_imports(project)}/{done['id']}"),
        c.post(_imports(project), json={"url": source.url("/m", "localhost"), "target": "x"}),
    ):
        assert answer.status_code == 404, answer.text
    assert source.requests == ["/m"]
    got = admin.client.get(f"{_imports(project)}/{done['id']}")
    assert got.status_code == 200 and got.json()["state"] == "succeeded"
    other = make_user("other")
    other_project = other.client.post(
        "/api/v1/projects", json={"name": f"Annat {other.username}", "branchName": "main"}
    ).json()
    # An import of one project is not found under another, even by a member of both.
    assert other.client.get(f"{_imports(other_project)}/{done['id']}").status_code == 404


# -- a query on a PostgreSQL data connection, stored as Parquet -----------------------


@pytest.fixture(scope="module")
def database(source_postgres: PrivatePostgres) -> tuple[int, str]:
    """A real PostgreSQL with a table t of 101 rows: its port and database."""
    return _with_table(source_postgres)


def _with_table(server: PrivatePostgres) -> tuple[int, str]:
    name = f"imp_{free_port()}"
    server.create_database(name)
    with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", dbname=name,
                         autocommit=True) as conn:  # fmt: skip
        conn.execute("CREATE TABLE t (id int8, label text)")
        conn.execute("INSERT INTO t SELECT i, 'rad ' || i FROM generate_series(0, 100) i")
    return server.port, name


def test_a_query_on_a_connection_is_imported_as_parquet(
    as_alice: httpx.Client, alice: TestUser, project: dict[str, Any], database: tuple[int, str]
) -> None:
    port, name = database
    pid = project["id"]
    made = as_alice.post(f"/api/v1/projects/{pid}/connections", json={
        "name": "lager", "kind": "postgresql", "host": "localhost", "port": port,
        "database": name, "user": "postgres", "password": "hemligt"})  # fmt: skip
    assert made.status_code == 201, made.text
    query = "SELECT id, label FROM t ORDER BY id"
    answer = as_alice.post(_imports(project), json={
        "connection": "lager", "query": query, "target": "main/db/t.parquet"})  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["connection"] == "LAGER" and answer.json()["url"] is None
    done = _ended(as_alice, project, answer.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["query"] == query

    data = f"/api/v1/projects/{pid}/data/main/db/t.parquet"
    got = alice.client.get(data)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == done["sha256"]
    table = pq.read_table(io.BytesIO(got.content))
    assert table.num_rows == 101 and table.column("label")[5].as_py() == "rad 5"
    provenance = alice.client.get(data, params={"provenance": "true"}).json()
    assert provenance["source"] == "query on connection LAGER"

    # A query that writes is refused at once, or by its read-only transaction.
    refused = as_alice.post(
        _imports(project),
        json={"connection": "lager", "query": "DELETE FROM t", "target": "main/db/x.parquet"},
    )
    assert refused.status_code == 422 and "reads" in refused.json()["detail"]
    sneaky = "-- rensa\nWITH d AS (DELETE FROM t RETURNING id) SELECT * FROM d"
    bad = as_alice.post(
        _imports(project),
        json={"connection": "lager", "query": sneaky, "target": "main/db/x.parquet"},
    )
    failed = _ended(as_alice, project, bad.json()["id"])
    assert failed["state"] == "failed" and "refused" in failed["error"], failed
    assert alice.client.get(f"/api/v1/projects/{pid}/data/main/db/x.parquet").status_code == 404
    # No such connection: 404 at once.
    missing = as_alice.post(_imports(project), json={
        "connection": "nej", "query": "SELECT 1", "target": "main/db/y.parquet"})  # fmt: skip
    assert missing.status_code == 404, missing.text


@pytest.mark.parametrize(
    "body",
    [
        {"connection": "x", "target": "main/a"},
        {"query": "SELECT 1", "target": "main/a"},
        {
            "url": "https://example.org/a",
            "connection": "x",
            "query": "SELECT 1",
            "target": "main/a",
        },
        {"target": "main/a"},
    ],
)
def test_an_import_names_one_source(
    as_alice: httpx.Client, project: dict[str, Any], body: dict[str, Any]
) -> None:
    answer = as_alice.post(_imports(project), json=body)
    assert answer.status_code == 422, answer.text
