from __future__ import annotations
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error,
    response_schema_conformance, status_code_conformance)
from balsam.web.openapi_dump import openapi_document
from tests.fixtures.app import TestUser
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
schema = schemathesis.openapi.from_dict(openapi_document())

@schema.parametrize()
@settings(max_examples=50, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_x(case, app: FastAPI, alice: TestUser, project) -> None:
    case.call_and_validate(app=app, headers=alice.headers, checks=CHECKS)
