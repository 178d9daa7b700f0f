"""The OpenAPI document: checked in, served unchanged, and compatible with upstream BALSAM.

Upstream's contract (``shared/upstream/balsam-api.yaml`` beside the repository)
is the promise that BALSAM clients keep working: every upstream project,
branch and file operation exists under ``/api/v1`` with the same path,
method, operation id and parameters, and every field name upstream sends or
expects is in our schema.

Workspaces (with templates), knowledge libraries, and copying library files
into a branch come in later issues. Until an area lands it must be absent;
once any of its paths is served, the whole area is held to the same checks,
so an area is never half-present.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from balsam.web.openapi_dump import openapi_document

REPO = Path(__file__).resolve().parents[4]
UPSTREAM = REPO.parent / "shared" / "upstream" / "balsam-api.yaml"
PREFIX = "/api/v1"
REGENERATE = "python -m balsam.web.openapi_dump > src/balsam/web/openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
PROJECTS = "projects"
#: Areas that later issues implement, by the path prefixes they own.
LATER_AREAS = {
    "workspaces": ("/workspaces", "/templates"),
    "knowledge-libraries": ("/knowledge-libraries",),
}
#: Tagged Project upstream, but copies knowledge-library files into a branch: an
#: issue of its own, after knowledge libraries.
LIBRARY_COPY = ("put", "/projects/{projectId}/branches/{branchId}/files")

Doc = dict[str, Any]


def load_upstream() -> Doc | None:
    if not UPSTREAM.is_file():
        return None
    doc: Doc = yaml.safe_load(UPSTREAM.read_text(encoding="utf-8"))
    return doc


def area_of(method: str, path: str) -> str:
    if (method, path) == LIBRARY_COPY:
        return "library-copy"
    return next(
        (area for area, prefixes in LATER_AREAS.items() if path.startswith(prefixes)), PROJECTS
    )


def upstream_operations(upstream: Doc | None, area: str | None = None) -> list[tuple[str, str]]:
    """``(method, path)`` of upstream's operations (in ``area``, if given)."""
    if upstream is None:
        return []
    return [
        (method, path)
        for path, item in upstream["paths"].items()
        for method in item
        if method in METHODS and area in (None, area_of(method, path))
    ]


UPSTREAM_DOC = load_upstream()
OPERATIONS = upstream_operations(UPSTREAM_DOC)
#: The operations for which upstream documents error responses.
FAILING_OPERATIONS = [
    (m, p)
    for m, p in OPERATIONS
    if UPSTREAM_DOC
    and any(not code.startswith("2") for code in UPSTREAM_DOC["paths"][p][m]["responses"])
]


@pytest.fixture(scope="module")
def served(anon: httpx.Client) -> Doc:
    r = anon.get(f"{PREFIX}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc: Doc = r.json()
    return doc


# -- schema walking ----------------------------------------------------------------


def resolve(doc: Doc, schema: Doc) -> Doc:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def field_paths(doc: Doc, schema: Doc, prefix: str = "", depth: int = 0) -> set[str]:
    """Every property name reachable in ``schema``, dotted (``branches[].isDefault``).

    Follows ``$ref``, merges ``allOf`` / ``anyOf`` / ``oneOf`` (our nullable
    fields are ``anyOf [X, null]``) and descends into arrays and objects.
    """
    schema = resolve(doc, schema)
    if depth > 8:
        return set()
    found: set[str] = set()
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, ()):
            found |= field_paths(doc, part, prefix, depth + 1)
    if "items" in schema:
        found |= field_paths(doc, schema["items"], f"{prefix}[]", depth + 1)
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        found |= {path} | field_paths(doc, sub, path, depth + 1)
    return found


def required_fields(doc: Doc, schema: Doc) -> set[str]:
    schema = resolve(doc, schema)
    required = set(schema.get("required", ()))
    for part in schema.get("allOf", ()):
        required |= required_fields(doc, part)
    return required


def success(responses: Doc) -> Doc:
    """The one 2xx response of an operation (upstream says 200, we say 201/204)."""
    found = [r for code, r in responses.items() if code.startswith("2")]
    assert len(found) == 1, f"expected one success response, got {list(responses)}"
    return found[0]


def content_schema(doc: Doc, response: Doc, media: str) -> Doc | None:
    content = resolve(doc, response).get("content", {})
    entry = content.get(media) or content.get("*/*")
    return None if entry is None else entry.get("schema", {})


def area_is_served(served: Doc, area: str) -> bool:
    if area == "library-copy":
        method, path = LIBRARY_COPY
        return method in served["paths"].get(PREFIX + path, {})
    return area == PROJECTS or any(
        p.removeprefix(PREFIX).startswith(LATER_AREAS[area]) for p in served["paths"]
    )


def ours(served: Doc, method: str, path: str) -> Doc:
    """Our operation for an upstream one (skips areas that have not landed yet)."""
    area = area_of(method, path)
    if not area_is_served(served, area):
        pytest.skip(f"{area} is a later issue (and absent: test_later_areas_are_absent_or_whole)")
    op: Doc | None = served["paths"].get(PREFIX + path, {}).get(method)
    assert op is not None, f"{method.upper()} {PREFIX}{path} is missing from our API"
    return op


# -- the checked-in document ------------------------------------------------------


def test_served_document_is_the_checked_in_one(served: Doc) -> None:
    checked_in = json.loads(
        resources.files("balsam.web").joinpath("openapi.json").read_text("utf-8")
    )
    assert served == checked_in, (
        f"The API changed but src/balsam/web/openapi.json did not. Review the change, "
        f"then regenerate the checked-in document with:\n    {REGENERATE}"
    )


def test_dump_module_writes_the_served_document(served: Doc) -> None:
    assert openapi_document() == served


def test_every_operation_has_an_id_and_documents_its_errors(served: Doc) -> None:
    for path, item in served["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op.get("operationId"), where
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), where
            if op.get("security") == []:  # open to all: login, logout, health
                continue
            assert "401" in codes, f"{where} does not document 401"


# -- upstream compatibility ----------------------------------------------------------


def test_upstream_contract_is_present() -> None:
    assert UPSTREAM_DOC is not None, (
        f"Upstream's contract is missing: expected {UPSTREAM} (the shared/ checkout "
        "beside the repository)"
    )
    assert len(upstream_operations(UPSTREAM_DOC, PROJECTS)) == 8


@pytest.mark.parametrize(
    ("method", "path"), OPERATIONS, ids=lambda v: v.upper() if v in METHODS else v
)
def test_upstream_operation_is_served(served: Doc, method: str, path: str) -> None:
    assert UPSTREAM_DOC is not None
    theirs = UPSTREAM_DOC["paths"][path][method]
    mine = ours(served, method, path)
    assert mine["operationId"] == theirs["operationId"]
    their_params = {(p["name"], p["in"]): p for p in theirs.get("parameters", ())}
    my_params = {(p["name"], p["in"]): p for p in mine.get("parameters", ())}
    assert set(their_params) <= set(my_params), f"missing parameters in {method} {path}"
    for key, param in their_params.items():
        if not param.get("required", False):
            assert not my_params[key].get("required", False), f"{key} became required"
    extra_required = {
        k for k, p in my_params.items() if p.get("required") and k not in their_params
    }
    assert not extra_required, f"new required parameters break upstream clients: {extra_required}"


@pytest.mark.parametrize(
    ("method", "path"), OPERATIONS, ids=lambda v: v.upper() if v in METHODS else v
)
def test_upstream_request_fields_are_accepted(served: Doc, method: str, path: str) -> None:
    assert UPSTREAM_DOC is not None
    body = UPSTREAM_DOC["paths"][path][method].get("requestBody")
    if body is None:
        return
    mine = ours(served, method, path)
    assert "requestBody" in mine, f"{method} {path} takes no body"
    for media, entry in body["content"].items():
        my_schema = content_schema(served, mine["requestBody"], media)
        assert my_schema is not None, f"{method} {path} does not accept {media}"
        missing = field_paths(UPSTREAM_DOC, entry["schema"]) - field_paths(served, my_schema)
        assert not missing, f"request fields missing in {method} {path}: {sorted(missing)}"
        extra = required_fields(served, my_schema) - required_fields(UPSTREAM_DOC, entry["schema"])
        assert not extra, f"fields upstream clients may omit are required: {sorted(extra)}"


@pytest.mark.parametrize(
    ("method", "path"), OPERATIONS, ids=lambda v: v.upper() if v in METHODS else v
)
def test_upstream_response_fields_are_sent(served: Doc, method: str, path: str) -> None:
    assert UPSTREAM_DOC is not None
    theirs = UPSTREAM_DOC["paths"][path][method]["responses"]
    mine = ours(served, method, path)["responses"]
    for media, entry in resolve(UPSTREAM_DOC, success(theirs)).get("content", {}).items():
        my_schema = content_schema(served, success(mine), media)
        assert my_schema is not None, f"{method} {path} does not answer {media}"
        missing = field_paths(UPSTREAM_DOC, entry.get("schema", {})) - field_paths(
            served, my_schema
        )
        assert not missing, f"response fields missing in {method} {path}: {sorted(missing)}"


@pytest.mark.parametrize(
    ("method", "path"), FAILING_OPERATIONS, ids=lambda v: v.upper() if v in METHODS else v
)
def test_upstream_error_fields_are_sent(served: Doc, method: str, path: str) -> None:
    """Upstream errors are ``application/problem+json``; so are ours, with its fields."""
    assert UPSTREAM_DOC is not None
    theirs = UPSTREAM_DOC["paths"][path][method]["responses"]
    mine = ours(served, method, path)["responses"]
    errors = {code: r for code, r in mine.items() if code.startswith(("4", "5"))}
    assert errors, f"{method} {path} documents no errors"
    for code, response in theirs.items():
        if code.startswith("2"):
            continue
        for media, entry in resolve(UPSTREAM_DOC, response)["content"].items():
            wanted = field_paths(UPSTREAM_DOC, entry["schema"])
            for my_code, my_response in errors.items():
                schema = resolve(served, my_response).get("content", {}).get(media, {})
                missing = wanted - field_paths(served, schema.get("schema", {}))
                assert not missing, (
                    f"{method.upper()} {path} {my_code} {media}: missing {sorted(missing)}"
                )


@pytest.mark.parametrize("area", sorted(LATER_AREAS))
def test_later_areas_are_absent_or_whole(served: Doc, area: str) -> None:
    theirs = upstream_operations(UPSTREAM_DOC, area)
    present = [(m, p) for m, p in theirs if m in served["paths"].get(PREFIX + p, {})]
    if not area_is_served(served, area):
        assert not present, f"{area} is a later issue, but {present} are served"
        return
    missing = sorted(set(theirs) - set(present))
    assert not missing, f"{area} is half-present: upstream's {missing} are missing"


def test_every_operation_but_liveness_documents_503_with_retry_after(anon: httpx.Client) -> None:
    paths = anon.get(f"{PREFIX}/openapi.json").json()["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            unavailable = operation["responses"].get("503")
            if path == f"{PREFIX}/health":
                assert unavailable is None, "liveness answers 200 while the process runs"
                continue
            assert unavailable is not None, f"{method.upper()} {path}"
            assert "Retry-After" in unavailable["headers"]
            assert "application/problem+json" in unavailable["content"]
