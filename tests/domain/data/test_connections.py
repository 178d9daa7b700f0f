"""Data connections in the domain: names, sealed secrets and their key, the
variables workspaces get, and a SQL query's result imported as Parquet from a real
PostgreSQL server (the session's under BALSAM_TEST_DATABASE=postgres, else one of
this module's own)."""

from __future__ import annotations

import io
import json
import logging
import stat
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from balsam.context import AppContext
from balsam.db.models import AuditEvent, DataConnection
from balsam.domain.data.connections import kinds
from balsam.domain.data.connections.query import (
    PostgresTarget,
    QueryFailed,
    QueryLimits,
    run_query_to_parquet,
)
from balsam.domain.data.connections.schemas import HttpCreate, PostgresqlCreate
from balsam.domain.data.connections.sealing import (
    KEY_FILE,
    KeyRing,
    SecretUnreadable,
    key_ring,
    new_key_text,
    seal,
    unseal,
)
from balsam.domain.data.connections.service import ConnectionService
from balsam.domain.identity.service import Actor
from balsam.errors import InvalidInput, NotFound, PayloadTooLarge, ProviderError
from balsam.settings import ConnectionSettings, Settings
from balsam.wiring import derive
from tests.fixtures.app import TestUser
from tests.fixtures.postgres import PrivatePostgres
from tests.fixtures.server import free_port

SECRET = "pw-Hemlis-7f3a9c"


def _ring(text: str | None = None) -> KeyRing:
    from balsam.domain.data.connections.sealing import decode_key

    return KeyRing(decode_key(text or new_key_text()))


# -- sealing -------------------------------------------------------------------------


def test_a_sealed_secret_opens_only_with_its_key_and_for_its_row() -> None:
    ring = _ring()
    sealed = seal(ring, SECRET, "connection:p/PG/postgresql")
    assert SECRET not in sealed and sealed.startswith("v1.")
    assert unseal(ring, sealed, "connection:p/PG/postgresql") == SECRET
    with pytest.raises(SecretUnreadable):
        unseal(_ring(), sealed, "connection:p/PG/postgresql")  # another key
    with pytest.raises(SecretUnreadable):
        unseal(ring, sealed, "connection:q/PG/postgresql")  # moved to another project
    with pytest.raises(SecretUnreadable):
        unseal(ring, sealed[:-4] + "AAAA", "connection:p/PG/postgresql")  # altered
    with pytest.raises(SecretUnreadable):
        unseal(ring, "garbage", "connection:p/PG/postgresql")


def test_an_old_key_still_opens_until_resealed() -> None:
    old, new = new_key_text(), new_key_text()
    sealed = seal(_ring(old), SECRET, "b")
    rotated = KeyRing(_ring(new).current, (_ring(old).current,))
    assert unseal(rotated, sealed, "b") == SECRET
    with pytest.raises(SecretUnreadable):
        unseal(_ring(new), sealed, "b")


def test_the_key_file_is_created_once_private_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = key_ring(settings)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert key_ring(settings) == first
    configured = Settings(
        data_dir=tmp_path, connections=ConnectionSettings(key=SecretStr(new_key_text()))
    )
    assert key_ring(configured).current != first.current


# -- names and variables ------------------------------------------------------------


@pytest.mark.parametrize("name", ["pg", "PG", "Sales_DB2", "A" * 40])
def test_usable_names_are_stored_upper_case(name: str) -> None:
    assert kinds.normal_name(name) == name.upper()


@pytest.mark.parametrize(
    "name", ["", "1PG", "_PG", "my-db", "a b", "A" * 41, "p\u0131", "\u00c5", "p\x00"]
)
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        kinds.normal_name(name)


def test_two_connections_never_share_a_variable() -> None:
    fields = [f for group in kinds.FIELDS.values() for f in group]
    for one in fields:
        for other in fields:
            assert not one.endswith("_" + other), (one, other)


def test_a_postgresql_connection_gives_a_dsn_with_the_password_quoted() -> None:
    settings = {"host": "db.example.org", "port": "5433", "database": "stat", "user": "ana"}
    env = kinds.environment("PG", "postgresql", settings, "p@ss:w/rd")
    assert env["BALSAM_CONN_PG_DSN"] == "postgresql://ana:p%40ss%3Aw%2Frd@db.example.org:5433/stat"
    assert env["BALSAM_CONN_PG_PASSWORD"] == "p@ss:w/rd"
    assert sorted(env) == sorted(kinds.variables("PG", "postgresql"))


@pytest.mark.parametrize(
    "host", ["/var/run/postgresql", "a,b", "db example", "-h", "db\nx", "db/../x"]
)
def test_hosts_libpq_would_read_otherwise_are_refused(host: str) -> None:
    data = PostgresqlCreate(
        name="PG", kind="postgresql", host=host, database="d", user="u", password="p"
    )
    with pytest.raises(InvalidInput):
        kinds.split(data)


@pytest.mark.parametrize("url", ["ftp://x", "http://user:pw@x", "http://", "not a url"])
def test_http_urls_must_be_plain_http(url: str) -> None:
    with pytest.raises(InvalidInput):
        kinds.split(HttpCreate(name="API", kind="http", url=url, token="t"))


# -- a real PostgreSQL ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(source_postgres: PrivatePostgres) -> PrivatePostgres:
    return source_postgres


@pytest.fixture(scope="module")
def source(pg: PrivatePostgres) -> PostgresTarget:
    """A database with a table of every common type, 100 rows."""
    name = f"src_{free_port()}"
    pg.create_database(name)
    with psycopg.connect(
        host="127.0.0.1", port=pg.port, user="postgres", dbname=name, autocommit=True
    ) as conn:
        conn.execute(
            "CREATE TABLE t (id int8, small int2, n int4, ok bool, x float8, amount numeric(10,2),"
            " day date, at timestamptz, label text, tag uuid, doc jsonb, raw bytea)"
        )
        conn.execute(
            "INSERT INTO t SELECT i, i, i, i % 2 = 0, i / 3.0, i * 1.25, date '2026-01-01' + i,"
            " timestamptz '2026-01-01 00:00+00' + i * interval '1 hour', 'rad ' || i || ' å',"
            " gen_random_uuid(), jsonb_build_object('i', i), '\\x00ff'"
            " FROM generate_series(1, 100) i"
        )
        conn.execute("INSERT INTO t (id) VALUES (NULL)")
    return PostgresTarget("127.0.0.1", pg.port, name, "postgres", SECRET)


def test_a_query_is_written_as_parquet_in_batches(source: PostgresTarget) -> None:
    sink = io.BytesIO()
    result = run_query_to_parquet(
        source, "SELECT * FROM t ORDER BY id NULLS LAST", sink, QueryLimits(batch_rows=7)
    )
    assert result.rows == 101 and result.bytes == len(sink.getvalue())
    table = pq.read_table(io.BytesIO(sink.getvalue()))
    assert table.num_rows == 101
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {
        "id": "int64",
        "small": "int16",
        "n": "int32",
        "ok": "bool",
        "x": "double",
        "amount": "decimal128(10, 2)",
        "day": "date32[day]",
        "at": "timestamp[us, tz=UTC]",
        "label": "string",
        "tag": "string",
        "doc": "string",
        "raw": "binary",
    }
    first = table.slice(0, 1).to_pylist()[0]
    assert first["label"] == "rad 1 å" and first["doc"] == '{"i": 1}' and first["raw"] == b"\0\xff"
    assert table.column("id").to_pylist()[-1] is None


def test_an_empty_result_is_a_parquet_file_with_columns(source: PostgresTarget) -> None:
    sink = io.BytesIO()
    result = run_query_to_parquet(source, "SELECT id, label FROM t WHERE false", sink)
    assert result.rows == 0 and result.columns == ["id", "label"]
    assert pq.read_table(io.BytesIO(sink.getvalue())).column_names == ["id", "label"]


def test_repeated_column_names_are_made_unique(source: PostgresTarget) -> None:
    sink = io.BytesIO()
    query = "SELECT 1 AS x, 2 AS x, 3 AS x_1, '50%' AS y;"
    assert run_query_to_parquet(source, query, sink).columns == ["x", "x_1", "x_1_1", "y"]
    assert pq.read_table(io.BytesIO(sink.getvalue())).to_pylist() == [
        {"x": 1, "x_1": 2, "x_1_1": 3, "y": "50%"}
    ]


@pytest.mark.parametrize(
    "query",
    [
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "SELECT 1; DELETE FROM t",
        "CREATE TABLE u (x int)",
        "SELECT * FROM no_such_table",
    ],
)
def test_nothing_but_reading_is_allowed(source: PostgresTarget, query: str) -> None:
    with pytest.raises(QueryFailed):
        run_query_to_parquet(source, query, io.BytesIO())
    check = io.BytesIO()
    assert run_query_to_parquet(source, "SELECT count(*) AS c FROM t", check).rows == 1
    assert pq.read_table(io.BytesIO(check.getvalue())).column("c").to_pylist() == [101]


def test_limits_on_time_rows_and_bytes(source: PostgresTarget) -> None:
    with pytest.raises(QueryFailed, match="statement timeout"):
        run_query_to_parquet(
            source, "SELECT pg_sleep(5)", io.BytesIO(), QueryLimits(timeout_seconds=1)
        )
    with pytest.raises(PayloadTooLarge):
        run_query_to_parquet(
            source, "SELECT * FROM t", io.BytesIO(), QueryLimits(max_rows=50, batch_rows=10)
        )
    with pytest.raises(PayloadTooLarge):
        run_query_to_parquet(
            source,
            "SELECT repeat(md5(i::text), 100) FROM generate_series(1, 5000) i",
            io.BytesIO(),
            QueryLimits(max_bytes=4096, batch_rows=500),
        )


def test_an_unreachable_server_is_a_provider_error(source: PostgresTarget) -> None:
    closed = PostgresTarget("127.0.0.1", free_port(), "x", "u", SECRET)
    with pytest.raises(ProviderError) as caught:
        run_query_to_parquet(closed, "SELECT 1", io.BytesIO(), QueryLimits(timeout_seconds=2))
    assert SECRET not in str(caught.value) and SECRET not in repr(closed)


# -- the service ------------------------------------------------------------------------


def _pg_body(source: PostgresTarget, name: str = "src") -> PostgresqlCreate:
    return PostgresqlCreate(
        name=name,
        kind="postgresql",
        host=source.host,
        port=source.port,
        database=source.database,
        user=source.user,
        password=SECRET,
    )


def _ctx(ctx: AppContext, **changes: Any) -> AppContext:
    return derive(ctx, settings=ctx.settings.model_copy(update=changes))


def test_members_import_and_nothing_holds_the_secret(
    ctx: AppContext,
    alice: TestUser,
    bob: TestUser,
    make_user: Any,
    project: dict[str, Any],
    source: PostgresTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pid = project["id"]
    assert alice.client.post(
        f"/api/v1/projects/{pid}/members", json={"username": bob.username}
    ).is_success
    service = ConnectionService(_ctx(ctx, source_private_hosts=["127.0.0.1"]))
    created = service.create(alice.actor, pid, _pg_body(source))
    assert created.name == "SRC" and created.secret_set
    assert SECRET not in created.model_dump_json()

    sink = io.BytesIO()
    result = service.query_to_parquet(bob.actor, pid, "src", "SELECT id FROM t", sink)
    assert result.rows == 101
    with pytest.raises(NotFound):
        service.query_to_parquet(make_user("eve").actor, pid, "SRC", "SELECT 1", io.BytesIO())
    # Without the administrator's leave, the server connects to no private address.
    with pytest.raises(InvalidInput, match="private or local"):
        ConnectionService(ctx).query_to_parquet(bob.actor, pid, "SRC", "SELECT 1", io.BytesIO())

    with ctx.sessions() as session:
        row = session.scalars(select(DataConnection).where(DataConnection.project_id == pid)).one()
        raw = session.execute(
            text("SELECT * FROM data_connections WHERE id = :id"), {"id": row.id}
        ).one()
        audit = session.scalars(select(AuditEvent).where(AuditEvent.project_id == pid)).all()
    assert SECRET not in repr(tuple(raw)) and row.secret_sealed
    assert any(e.action == "connection.use" for e in audit)
    assert all(SECRET not in repr(e.details) for e in audit)
    assert SECRET not in caplog.text


def test_workspaces_get_every_connection_and_never_one_sealed_with_another_key(
    ctx: AppContext,
    alice: TestUser,
    project: dict[str, Any],
    source: PostgresTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pid = project["id"]
    service = ConnectionService(ctx)
    service.create(alice.actor, pid, _pg_body(source, "warehouse"))
    service.create(
        alice.actor, pid, HttpCreate(name="api", kind="http", url="https://x.org/", token=SECRET)
    )
    env = service.workspace_environment(pid)
    assert env["BALSAM_CONN_WAREHOUSE_PASSWORD"] == SECRET
    assert env["BALSAM_CONN_API_TOKEN"] == SECRET
    assert env["BALSAM_CONN_WAREHOUSE_PORT"] == str(source.port)

    caplog.set_level(logging.WARNING)
    other = ConnectionService(
        _ctx(ctx, connections=ConnectionSettings(key=SecretStr(new_key_text())))
    )
    assert other.workspace_environment(pid) == {}
    assert "WAREHOUSE" in caplog.text and SECRET not in caplog.text


def test_the_workspace_secret_store_never_keeps_connection_variables(tmp_path: Path) -> None:
    from balsam.domain.workspaces.secrets import WorkspaceSecretStore
    from balsam.providers.workspaces.base import WorkspaceSecrets

    store = WorkspaceSecretStore(tmp_path / "ws")
    store.save("w1", WorkspaceSecrets("a", "s", "u", "g", "t", {"BALSAM_CONN_X_TOKEN": SECRET}))
    assert SECRET not in (tmp_path / "ws" / "w1.json").read_text()
    loaded = store.load("w1")
    assert loaded is not None and loaded.connection_env == {}


def test_a_key_rotation_reseals_every_secret(fresh_database_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from balsam.cli import main
    from balsam.cli.admin import database_context
    from balsam.db.models import Project

    old, new = new_key_text(), new_key_text()
    settings = Settings(
        data_dir=tmp_path,
        database_url=fresh_database_url,
        connections=ConnectionSettings(key=SecretStr(old)),
    )
    with database_context(settings) as ctx:
        with ctx.sessions() as session, session.begin():
            session.add(Project(id="p", name="P", name_key="p", default_branch="main", bucket="p"))
        service = ConnectionService(ctx)
        service.create(
            Actor(user_id=0, username="cli:test", is_admin=True),
            "p",
            HttpCreate(name="api", kind="http", url="https://x.org/", token=SECRET),
        )
    env = {
        "BALSAM_DATABASE_URL": fresh_database_url,
        "BALSAM_DATA_DIR": str(tmp_path),
        "BALSAM_CONNECTIONS__KEY": new,
        "BALSAM_CONNECTIONS__PREVIOUS_KEYS": json.dumps([old]),
    }
    done = CliRunner().invoke(main, ["admin", "reseal-connections"], env=env)
    assert done.exit_code == 0, done.output
    assert "resealed 1 " in done.output and SECRET not in done.output
    only_new = settings.model_copy(update={"connections": ConnectionSettings(key=SecretStr(new))})
    with database_context(only_new) as ctx:
        assert ConnectionService(ctx).workspace_environment("p") == {
            "BALSAM_CONN_API_URL": "https://x.org/",
            "BALSAM_CONN_API_TOKEN": SECRET,
        }
