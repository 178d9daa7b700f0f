"""Errors outside the domain's own still answer problem+json, never a bare 500."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.web.pages.browsing import browser


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/api/v1/projects", None),
        ("POST", "/api/v1/projects", {"name": "Under an outage", "branchName": "main"}),
    ],
)
def test_an_unreachable_database_is_503_and_changes_nothing(
    alice: TestUser,
    ctx: AppContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
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


def test_a_page_the_database_cannot_answer_asks_again_by_itself(
    app: FastAPI,
    ctx: AppContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error page of a 503 with Retry-After reloads after that time (a GET); the
    answer to a form post does not (it would be asked for without the form)."""
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'balsam.db'}")
    with browser(app) as client:
        monkeypatch.setattr(ctx, "sessions", sessionmaker(broken, expire_on_commit=False))
        page = client.get("/projects", headers={"Cookie": "balsam_session=x"})
        posted = client.post("/new-project", headers={"Cookie": "balsam_session=x"})
        monkeypatch.undo()
    assert page.status_code == 503 and page.headers["retry-after"] == "5"
    assert '<meta http-equiv="refresh" content="5">' in page.text
    assert posted.status_code == 503 and 'http-equiv="refresh"' not in posted.text


@pytest.mark.parametrize("header", [b"X-Bad: a\x01b", b"X-Bad: a\x00b", b"Bad Name: x"])
def test_a_malformed_header_is_400_problem_json(live_url: str, header: bytes) -> None:
    """uvicorn refuses it before the app runs; the answer is still problem+json."""
    host, port = live_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 400
