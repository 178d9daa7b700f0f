"""CORS on the API for the origins an administrator lists (another web client, such
as upstream's UI on its own origin with a bearer token): preflights answered for
them only, nothing opened outside /api/, never a workspace's origin, and Balsam's
session cookie never taken from another origin's script."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from balsam.app import create_app
from balsam.context import AppContext
from balsam.settings import Settings, WorkspaceSettings
from balsam.web.cors import ApiCors
from balsam.wiring import derive
from tests.fixtures.app import TestUser
from tests.web.pages.browsing import ORIGIN, browser

UI = "https://ui.example.org"
OTHER = "https://evil.example.net"


@pytest.fixture(scope="module")
def cors_app(ctx: AppContext) -> FastAPI:
    settings = ctx.settings.model_copy(update={"cors_origins": [UI, "http://127.0.0.1:5173"]})
    return create_app(settings, ctx=derive(ctx, settings=settings))


@pytest.fixture
def client(cors_app: FastAPI, alice: TestUser) -> Iterator[httpx.Client]:
    with TestClient(cors_app, raise_server_exceptions=False) as plain:
        plain.headers.clear()
        yield plain


def _preflight(
    client: httpx.Client,
    origin: str,
    path: str = "/api/v1/projects",
    method: str = "POST",
    headers: str = "authorization, content-type",
) -> httpx.Response:
    asking = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    return client.options(path, headers={"Origin": origin, **asking})


def test_a_listed_origins_preflight_is_answered(client: httpx.Client) -> None:
    answer = _preflight(client, UI, method="DELETE")
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == UI
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= {
        m.strip() for m in answer.headers["access-control-allow-methods"].split(",")
    }
    assert answer.headers["access-control-allow-headers"] == "authorization, content-type"
    assert "Origin" in answer.headers["vary"]
    shouted = _preflight(client, UI.upper())
    assert shouted.headers["access-control-allow-origin"] == UI  # as listed, not as sent
    local = _preflight(client, "http://127.0.0.1:5173", "/api/v1/projects/x/data/main/a.csv", "PUT")
    assert local.headers["access-control-allow-origin"] == "http://127.0.0.1:5173"


@pytest.mark.parametrize(
    ("origin", "headers", "method"),
    [
        (OTHER, "authorization", "POST"),
        ("https://ui.example.org.evil.example.net", "authorization", "POST"),
        ("http://ui.example.org", "authorization", "POST"),  # another scheme is another origin
        ("null", "authorization", "POST"),
        (UI, "authorization, x-csrf-token", "POST"),  # the cookie session's header: not theirs
        (UI, "cookie", "POST"),
        (UI, "authorization", "TRACE"),
        (UI, "authorization", "CONNECT"),
    ],
)
def test_other_origins_headers_and_methods_get_no_cors(
    client: httpx.Client, origin: str, headers: str, method: str
) -> None:
    answer = _preflight(client, origin, method=method, headers=headers)
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert not [h for h in answer.headers if h.startswith("access-control-")]


def test_a_listed_origins_calls_with_a_bearer_token_are_readable(
    client: httpx.Client, alice: TestUser
) -> None:
    answer = client.get("/api/v1/projects", headers={**alice.headers, "Origin": UI})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    assert "Location" in answer.headers["access-control-expose-headers"]
    assert "Origin" in answer.headers["vary"]
    created = client.post("/api/v1/projects", headers={**alice.headers, "Origin": UI},
                          json={"name": "Från UI", "branchName": "main"})  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == UI
    refused = client.get("/api/v1/projects", headers={"Origin": UI})  # no token
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == UI
    other = client.get("/api/v1/projects", headers={**alice.headers, "Origin": OTHER})
    assert "access-control-allow-origin" not in other.headers
    assert "Origin" in other.headers["vary"]


@pytest.mark.parametrize("path", ["/projects", "/git/x.git/info/refs", "/workspaces/x/lab",
                                  "/static/balsam.css", "/login"])  # fmt: skip
def test_nothing_outside_the_api_is_opened(client: httpx.Client, path: str) -> None:
    answer = _preflight(client, UI, path=path, method="GET")
    assert "access-control-allow-origin" not in answer.headers
    plain = client.get(path, headers={"Origin": UI})
    assert "access-control-allow-origin" not in plain.headers


def test_the_session_cookie_counts_from_balsams_own_pages_only(
    cors_app: FastAPI, alice: TestUser
) -> None:
    with browser(cors_app, alice) as signed_in:
        assert signed_in.get("/api/v1/projects", headers={"Origin": ORIGIN}).status_code == 200
        assert signed_in.get("/api/v1/projects").status_code == 200  # a link: no Origin
        for origin in (UI, OTHER):
            answer = signed_in.get("/api/v1/projects", headers={"Origin": origin})
            assert answer.status_code == 403, origin
            assert "bearer token" in answer.json()["detail"]


def test_without_listed_origins_the_api_answers_no_preflight(app: FastAPI, alice: TestUser) -> None:
    with TestClient(app, raise_server_exceptions=False) as plain:
        answer = _preflight(plain, UI)
        assert answer.status_code == 405
        assert "access-control-allow-origin" not in answer.headers
        got = plain.get("/api/v1/projects", headers={**alice.headers, "Origin": UI})
        assert "access-control-allow-origin" not in got.headers


def test_a_workspaces_origin_is_never_listed(ctx: AppContext) -> None:
    """Code in a workspace is not another web client, whatever an admin writes."""
    workspaces = WorkspaceSettings(port=8081, public_url="https://*.ws.example.org")
    settings = ctx.settings.model_copy(
        update={"cors_origins": [UI, "https://abc.ws.example.org"], "workspaces": workspaces}
    )
    assert ApiCors(create_app(settings, ctx=derive(ctx, settings=settings)), settings).origins == {
        UI
    }


def test_origins_are_written_as_browsers_send_them() -> None:
    settings = Settings(cors_origins=["HTTPS://UI.Example.org:443/", "http://[::1]:5173"])
    assert settings.cors_origins == [UI, "http://[::1]:5173"]
    wrong_ones = ("*", "null", "https://ui.example.org/app", "ftp://ui.example.org",
                  "https://user@ui.example.org", "https://*.example.org",
                  "https://ui:99999")  # fmt: skip
    for wrong in wrong_ones:
        with pytest.raises(ValidationError):
            Settings(cors_origins=[wrong])
