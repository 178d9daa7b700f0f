"""Property-based tests of every API operation against its own OpenAPI document.

Schemathesis generates valid and invalid requests for each operation of the
document the code builds (``test_openapi`` proves it is the served one) and
sends them in-process to the session's app as ``alice``, who owns a
project. About half of the examples put real ids in the path (her project,
its default branch, its README, her username, her first S3 key) so that the
handlers behind the 404s run too. Each operation gets its own fresh project,
so a generated ``DELETE`` only spoils its own run. Examples are derandomized:
the same requests on every run, so CI never fails by chance.

No response may be a 5xx, and every status code, content type and body must
be the ones the document promises.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from balsam.domain.projects.naming import encode_file_id
from balsam.web.openapi_dump import openapi_document
from tests.fixtures.app import TestUser

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def fuzzed_app(app: FastAPI) -> ASGIApp:
    """The session's app, seeing every request come from an address of its own,
    so the fuzzer's failed logins never rate-limit other tests' logins."""

    async def from_fuzzer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": ("192.0.2.99", 50000)}
        await app(scope, receive, send)

    return from_fuzzer


@pytest.fixture
def real_ids(alice: TestUser, project: dict[str, Any]) -> dict[str, str]:
    """Path parameter values that name existing things."""
    return {
        "projectId": project["id"],
        "branchId": "main",
        "fileId": encode_file_id("README.md"),
        "username": alice.username,
        "accessKey": project["credentials"]["accessKey"],
    }


@schema.parametrize()
@schema.given(use_real_ids=st.booleans())
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case,
    use_real_ids: bool,
    fuzzed_app: ASGIApp,
    alice: TestUser,
    real_ids: dict[str, str],
) -> None:
    if use_real_ids and case.path_parameters:
        for name in case.path_parameters.keys() & real_ids.keys():
            case.path_parameters[name] = real_ids[name]
    case.call_and_validate(app=fuzzed_app, headers=alice.headers, checks=CHECKS)


# -- inputs the fuzzer found ---------------------------------------------------------
# PostgreSQL can neither store nor compare U+0000: before the API refused it, each of
# these was a 500 on PostgreSQL (and silently stored on SQLite).
NUL_CASES = [
    ("POST", "/api/v1/auth/login", {"username": "a\x00b", "password": "x"}),
    ("GET", "/api/v1/projects?q=a%00b", None),
    ("GET", "/api/v1/projects/a%00b", None),
    ("PATCH", "/api/v1/projects/{p}", {"description": "a\x00b"}),
    ("POST", "/api/v1/projects", {"name": "nul", "description": "\x00", "branchName": "main"}),
    ("POST", "/api/v1/projects/{p}/branches", {"name": "b", "description": "\x00"}),
    ("GET", "/api/v1/projects/{p}/branches/a%00b/files", None),
    ("PATCH", "/api/v1/projects/{p}/members/a%00b", {"role": "owner"}),
    ("POST", "/api/v1/projects/{p}/credentials", {"name": "a\x00b"}),
    ("DELETE", "/api/v1/projects/{p}/credentials/a%00b", None),
    ("PATCH", "/api/v1/users/{me}", {"email": "a\x00b"}),
    ("POST", "/api/v1/users/me/tokens", {"name": "a\x00b"}),
    ("DELETE", "/api/v1/users/me/tokens/a%00b", None),
    ("GET", "/api/v1/projects/{p}/connections/a%00b", None),
    (
        "POST",
        "/api/v1/projects/{p}/connections",
        {"name": "api", "kind": "http", "url": "https://x.org/", "token": "a\x00b"},
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), NUL_CASES, ids=[f"{m} {p}" for m, p, _ in NUL_CASES]
)
def test_nul_characters_are_refused(
    alice: TestUser, project: dict[str, Any], method: str, path: str, body: Any
) -> None:
    url = path.replace("{p}", project["id"]).replace("{me}", alice.username)
    r = alice.client.request(method, url, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_nul_in_basic_credentials_is_401(anon: Any, alice: TestUser) -> None:
    r = anon.post(
        "/api/v1/users/me/tokens", json={"name": "t"}, auth=(f"{alice.username}\x00", "password")
    )
    assert r.status_code == 401, r.text
