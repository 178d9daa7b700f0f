"""Project creation is all-or-nothing: a failure at any step leaves nothing behind.

The failing parts are thin wrappers around the *real* providers: they pass
every call through and raise on the chosen one, either before the real call
or after it has done its work (the harder case for rollback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from balsam.context import AppContext
from balsam.db.models import AuditEvent, Branch, Credential, Membership, Project
from balsam.errors import ProviderError
from balsam.providers.bundle import Providers
from tests.fixtures.app import TestUser


class Injected(ProviderError):
    pass


class Faulty:
    """Delegate to ``real``; make ``method`` fail (``after``: once it has run)."""

    def __init__(self, real: Any, method: str | None, *, after: bool) -> None:
        self._real, self._method, self._after = real, method, after
        self.keys: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == self._method and not self._after:
                raise Injected(f"injected failure before {name}")
            result = attr(*args, **kwargs)
            if name == "create_key":
                self.keys.append(result.access_key)
            if name == self._method:
                raise Injected(f"injected failure after {name}")
            return result

        return call


STEPS = [
    ("git", "create_repository"),
    ("storage", "create_bucket"),
    ("storage", "put_object"),
    ("storage", "create_key"),
]


@pytest.fixture
def faulty(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str | None, str | None, bool], Faulty]]:
    real = ctx.providers

    def install(kind: str | None, method: str | None, after: bool) -> Faulty:
        git = Faulty(real.git, method if kind == "git" else None, after=after)
        storage = Faulty(real.storage, method if kind == "storage" else None, after=after)
        monkeypatch.setattr(
            ctx,
            "providers",
            Providers(  # type: ignore[arg-type]
                git=git, storage=storage, workspaces=real.workspaces
            ),
        )
        return storage

    yield install


def _leftovers(ctx: AppContext, name: str, keys: list[str]) -> list[str]:
    found = []
    with ctx.sessions() as session:
        if session.scalar(select(func.count()).where(Project.name == name)):
            found.append("project row")
        for model in (Branch, Membership, Credential):
            ids = session.scalars(select(model.project_id)).all()
            if any(i.startswith("rollback") for i in ids):
                found.append(f"{model.__tablename__} row")
    git = ctx.settings.data_dir / "git"
    found += [f"repo {p.name}" for p in git.glob("rollback*.git")]
    storage = ctx.providers.storage
    found += [f"key {k}" for k in keys if storage.key_exists(k)]
    return found


def _buckets(ctx: AppContext) -> list[str]:
    client = ctx.providers.storage._s3  # type: ignore[attr-defined]
    return [
        b["Name"]
        for b in client.list_buckets().get("Buckets", [])
        if b["Name"].startswith("rollback")
    ]


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize(("kind", "method"), STEPS)
def test_failure_at_each_provider_step_leaves_nothing(
    alice: TestUser,
    ctx: AppContext,
    faulty: Callable[..., Faulty],
    kind: str,
    method: str,
    after: bool,
) -> None:
    storage = faulty(kind, method, after)
    name = f"Rollback {kind} {method} {after}"
    r = alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"})
    assert r.status_code == 502, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "undone" in r.json()["detail"]
    assert _leftovers(ctx, name, storage.keys) == []
    assert _buckets(ctx) == []
    _assert_failure_audited(ctx, alice.username)


def test_database_failure_rolls_back_providers(
    alice: TestUser, ctx: AppContext, faulty: Callable[..., Faulty]
) -> None:
    storage = faulty(None, None, False)

    def boom(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MEMBERSHIPS"):
            raise RuntimeError("injected database failure")

    event.listen(ctx.engine, "before_cursor_execute", boom)
    try:
        r = alice.client.post(
            "/api/v1/projects", json={"name": "Rollback database", "branchName": "main"}
        )
    finally:
        event.remove(ctx.engine, "before_cursor_execute", boom)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert storage.keys, "the key step ran before the database step"
    assert _leftovers(ctx, "Rollback database", storage.keys) == []
    assert _buckets(ctx) == []
    _assert_failure_audited(ctx, alice.username)


def test_after_a_failure_everything_still_works(
    alice: TestUser, ctx: AppContext, faulty: Callable[..., Faulty], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ctx.providers
    faulty("storage", "create_key", True)
    name = "Rollback then retry"
    assert (
        alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"}).status_code
        == 502
    )
    monkeypatch.setattr(ctx, "providers", real)
    assert alice.client.get("/api/v1/projects").status_code == 200
    r = alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"})
    assert r.status_code == 201, r.text
    assert alice.client.delete(f"/api/v1/projects/{r.json()['id']}").status_code == 204


def _assert_failure_audited(ctx: AppContext, username: str) -> None:
    with ctx.sessions() as session:
        last = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "project.create")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).one()
    assert last.outcome == "failure" and last.actor == username
    assert last.details["notUndone"] == []
