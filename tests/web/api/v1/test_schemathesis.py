"""Property-based tests of every API operation against its own OpenAPI document.

Schemathesis generates valid and invalid requests for each operation of the
document the code builds (``test_openapi`` proves it is the served one) and
sends them in-process to the session's app as ``alice``, who owns a project. Half of the
examples put real ids in the path (her project, its default branch, its
README, her username, her first S3 key) so that the handlers behind the
404s run too. Each operation gets its own fresh project, so a generated
``DELETE`` only spoils its own run.

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

from balsam.domain.projects.naming import encode_file_id
from balsam.web.openapi_dump import openapi_document
from tests.fixtures.app import TestUser

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture
def real_ids(alice: TestUser, project: dict[str, Any]) -> dict[str, str]:
    """Path parameter values that name existing things."""
    return {"projectId": project["id"], "branchId": "main",
            "fileId": encode_file_id("README.md"), "username": alice.username,
            "accessKey": project["credentials"]["accessKey"]}


@pytest.mark.slow
@schema.parametrize()
@schema.given(use_real_ids=st.booleans())
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_its_schema(case: schemathesis.Case, use_real_ids: bool,
                                    app: FastAPI, alice: TestUser, real_ids: dict[str, str]
                                    ) -> None:
    if use_real_ids and case.path_parameters:
        for name in case.path_parameters.keys() & real_ids.keys():
            case.path_parameters[name] = real_ids[name]
    case.call_and_validate(app=app, headers=alice.headers, checks=CHECKS)
