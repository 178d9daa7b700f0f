"""Errors outside the domain's own still answer problem+json, never a bare 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from balsam.context import AppContext
from tests.fixtures.app import TestUser


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v1/projects", None),
    ("POST", "/api/v1/projects", {"name": "Under an outage", "branchName": "main"}),
])
def test_an_unreachable_database_is_503_and_changes_nothing(
        alice: TestUser, ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        method: str, path: str, body: dict[str, str] | None) -> None:
    before = alice.client.get("/api/v1/projects").json()
    # A real engine on a database file that cannot be opened: what a missing
    # volume or a PostgreSQL restart looks like to the application.
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'balsam.db'}")
    monkeypatch.setattr(ctx, "sessions", sessionmaker(broken, expire_on_commit=False))

    r = alice.client.request(method, path, json=body)

    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "5"
    assert r.json()["reason"] == "database-unavailable"
    monkeypatch.undo()
    assert alice.client.get("/api/v1/projects").json() == before
