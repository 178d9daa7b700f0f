"""The one place errors become HTTP responses: ``application/problem+json`` for the
API, git and the workspace proxy, and the portal's error page (same look as every
page, with the request id) for a browser on a page route."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from balsam.domain.audit.service import AuditRecord
from balsam.errors import BalsamError, ProviderError
from balsam.web.pages.forms import known_session
from balsam.web.pages.i18n import N_, gettext
from balsam.web.pages.render import render

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
_TITLES = {
    400: N_("Bad request"),
    401: N_("Authentication required"),
    403: N_("Forbidden"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict"),
    413: N_("Payload too large"),
    415: N_("Unsupported media type"),
    422: N_("Invalid input"),
    429: N_("Too many requests"),
    500: N_("Internal error"),
    502: N_("Backend failure"),
    503: N_("Service unavailable"),
    507: N_("Storage quota exceeded"),
}
_GENERIC_TITLE = N_("Error")


#: Paths whose clients are programs: they always get problem+json.
_MACHINE_PREFIXES = ("/api/", "/git/", "/workspaces/", "/static/")


def wants_page(request: Request) -> bool:
    """Whether the error goes to a browser on one of the portal's pages."""
    path = request.url.path
    return not path.startswith(_MACHINE_PREFIXES) and "text/html" in request.headers.get(
        "accept", ""
    )


def error_page(
    status: int,
    detail: str | BalsamError,
    *,
    request: Request,
    headers: dict[str, str] | None,
) -> Response:
    """The portal's error page: ``detail`` (a service's error is translated)."""
    _ = gettext(request)
    hdrs = dict(headers or {})
    hdrs.pop("WWW-Authenticate", None)  # a browser would ask for a password
    return render(
        request,
        "error.html",
        status=status,
        headers=hdrs,
        title=_(_TITLES.get(status, _GENERIC_TITLE)),
        detail=detail.translated(_) if isinstance(detail, BalsamError) else _(detail),
        retry_after=hdrs.get("Retry-After", ""),
        # A page asked for again by itself once the wait is over (not a form's answer:
        # that would be asked for without the form).
        refresh=hdrs.get("Retry-After", "") if request.method in ("GET", "HEAD") else "",
    )


def respond(
    status: int,
    detail: str | BalsamError,
    *,
    request: Request,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The error as the caller can read it: the portal's error page for a browser on a
    page route (:func:`wants_page`), else problem+json. ``detail``: the message, or
    the service's error (whose message the page shows translated)."""
    if wants_page(request):
        try:
            return error_page(status, detail, request=request, headers=headers)
        except Exception:  # the page itself failed: the error must still be answered
            log.exception("rendering the error page failed")
    message = detail.message if isinstance(detail, BalsamError) else detail
    return problem(status, message, reason=reason, request=request, headers=headers, **extra)


def problem(
    status: int,
    detail: str,
    *,
    reason: str | None = None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build an RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason or _TITLES.get(status, "error").lower().replace(" ", "-"),
    }
    if request is not None:
        body["instance"] = str(request.url.path)
        rid = getattr(request.state, "request_id", None)
        if rid:
            body["requestId"] = rid
    body.update(extra)
    hdrs = dict(headers or {})
    if status == 401:
        hdrs.setdefault("WWW-Authenticate", 'Bearer realm="balsam"')
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=hdrs)


#: ProviderError codes that mean "the backend did not answer in time or at all"
#: (botocore and httpx exception names, gRPC status names, a key not applied in
#: time): trying again later may work. Any other failure stays a 502.
UNAVAILABLE_CODES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ConnectionError",
        "HTTPClientError",
        "ProxyConnectionError",
        "ServiceUnavailable",
        "SlowDown",
        "503",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "timeout",
    }
)
#: Seconds a client should wait; the embedded storage restarts within that.
RETRY_AFTER_S = 5


def backend_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a backend that timed out or refused the connection, or
    was caused by one (services re-raise a provider's error with their own words)."""
    while isinstance(exc, ProviderError):
        if exc.details.get("code") in UNAVAILABLE_CODES:
            return True
        exc = exc.__cause__
    return False


async def _balsam_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BalsamError)
    if backend_unavailable(exc):
        log.warning(
            "backend unavailable on %s %s: %s", request.method, request.url.path, exc.message
        )
        return respond(
            503,
            f"{exc.message} The service is unavailable for now; try again shortly.",
            reason="backend-unavailable",
            request=request,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if exc.status in (401, 403) and not exc.details.get("audited"):
        await run_in_threadpool(_audit_denial, request, exc)
    # Details meant for the client: validation errors; the precondition a re-run lacks.
    extra = {k: exc.details[k] for k in ("errors", "precondition") if k in exc.details}
    retry = exc.details.get("retryAfterSeconds")
    if wants_page(request):
        await known_session(request)  # the error page shows the menu
    return respond(
        exc.status,
        exc,
        reason=exc.reason,
        request=request,
        headers={"Retry-After": str(retry)} if retry else None,
        **extra,
    )


def _audit_denial(request: Request, exc: BalsamError) -> None:
    """Every refused request lands in the audit trail."""
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is None:
        return
    actor = getattr(request.state, "actor", None)
    ctx.audit.record(
        AuditRecord(
            actor=actor.username if actor else "anonymous",
            action="request.denied",
            target=f"{request.method} {request.url.path}"[:300],
            outcome="denied",
            request_id=str(getattr(request.state, "request_id", "")),
            details={"status": exc.status, "reason": exc.message[:200]},
        )
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    malformed = any(e["type"] in {"json_invalid", "json_type"} for e in errors)
    status = 400 if malformed else 422
    detail = "The request body is not valid JSON." if malformed else "The request is invalid."
    return respond(status, detail, request=request, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail)
    if exc.status_code == 404 and wants_page(request):
        _ = gettext(request)
        detail = _("There is no page at this address.")
        await known_session(request)  # the error page shows the menu
    return respond(exc.status_code, detail, request=request, headers=dict(exc.headers or {}))


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """The database cannot be reached or is busy (SQLite locked, PostgreSQL
    down or restarting): nothing was changed, and trying again may work."""
    log.error(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        type(exc.__cause__ or exc).__name__,
    )
    return respond(
        503,
        "The database is unavailable; nothing was changed. Try again shortly.",
        reason="database-unavailable",
        request=request,
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return respond(500, "An unexpected error occurred.", request=request)


_LIVENESS = "/api/v1/health"
_UNAVAILABLE: dict[str, Any] = {
    "description": "Service unavailable: the database or the storage server is down or "
    "restarting; nothing was changed. Retry after the time given.",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"},
        }
    },
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Document every 4xx/5xx response as ``application/problem+json`` with the
    Problem schema (FastAPI would file a response model under application/json),
    and the errors any operation can give: 400/413/422 for a request body
    (malformed JSON, too large, invalid), 422 for parameters, and 503 with
    ``Retry-After`` from every operation but liveness (the database or the
    storage server is down or restarting)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            implied = (["400", "413", "422"] if "requestBody" in operation else []) + (
                ["422"] if operation.get("parameters") else []
            )
            for code in implied:
                responses.setdefault(code, {"description": _TITLES[int(code)]})
            if path != _LIVENESS:
                unavailable = responses.setdefault("503", dict(_UNAVAILABLE))
                unavailable.setdefault("headers", _UNAVAILABLE["headers"])
            for code, response in responses.items():
                if code[:1] in "45":
                    response["content"] = {PROBLEM: {"schema": ref}}
    return schema


SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token (POST /api/v1/users/me/tokens).",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "balsam_session",
        "description": "The portal's session; writes also need X-CSRF-Token.",
    },
    "basicAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "Username and password; only to mint a first token.",
    },
}
#: Operations that need no credentials, and the one that also takes Basic.
_OPEN = {"/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/health", "/api/v1/health/ready"}
_BASIC = ("/api/v1/users/me/tokens", "post")


def document_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare how callers authenticate: bearer token or session cookie everywhere,
    HTTP Basic on token creation, nothing on login/logout and health."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    schema["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if path in _OPEN:
                operation["security"] = []
            elif (path, method) == _BASIC:
                operation["security"] = [*schema["security"], {"basicAuth": []}]
    return schema


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BalsamError, _balsam_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
