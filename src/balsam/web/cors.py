"""CORS for the API: browsers on the origins an administrator lists (``cors_origins``)
may call ``/api/…`` — another web client, such as upstream's UI served on its own
origin with a bearer token from the identity provider.

* A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin
  is answered here, before routing and authentication (a browser sends none of its
  credentials with it); from any other origin it is refused with 403 and no CORS
  header, so the browser stops there.
* Other requests from a listed origin get ``Access-Control-Allow-Origin`` (that origin,
  never ``*``) and ``-Allow-Credentials``; from others nothing changes.
* Nothing outside ``/api/`` (pages, git, workspaces) is ever opened this way, and a
  workspace's own origin never counts as listed: code in a workspace is not another
  web client.

Who the caller is stays :func:`balsam.web.deps.authenticate`'s decision; it does not
take Balsam's session cookie from another origin's page, so a listed origin's calls
carry a bearer token.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from balsam.settings import Settings
from balsam.web.errors import problem
from balsam.web.origins import is_workspace_host

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
_METHOD_SET = frozenset(METHODS.split(", "))
#: Request headers a listed origin's scripts may send (lower case).
HEADERS = frozenset(
    {"authorization", "content-type", "content-range", "range", "if-match", "x-request-id"}
)
#: Response headers their scripts may read, besides the CORS-safelisted ones.
EXPOSED = "Location, Content-Disposition, Content-Range, ETag, Retry-After, X-Request-ID"
MAX_AGE = "600"


class ApiCors:
    """The middleware (see the module's docstring); install it only when
    ``settings.cors_origins`` lists an origin."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.origins = frozenset(
            o
            for o in settings.cors_origins
            if not is_workspace_host(settings, (urlsplit(o).hostname or "").lower())
        )
        for origin in sorted(set(settings.cors_origins) - self.origins):
            log.warning("cors_origins: %s is a workspace's origin and is not allowed", origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        sent = headers.get("origin")
        # The listed spelling is echoed: browsers send origins in lower case anyway.
        origin = sent.lower() if sent is not None and sent.lower() in self.origins else None
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, receive, send, headers, origin)
        elif origin is not None:
            await self.app(scope, receive, _with_cors(send, origin))
        else:
            await self.app(scope, receive, _vary(send))

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, origin: str | None
    ) -> None:
        asked = _tokens(headers.get("access-control-request-headers", ""))
        method = headers.get("access-control-request-method", "").strip().upper()
        if origin is None or not asked <= HEADERS or method not in _METHOD_SET:
            answer = problem(
                403,
                "This origin may not call the API from a browser, or not this way.",
                reason="cors-refused",
                headers={"Vary": "Origin"},
            )
            await answer(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-credentials", b"true"),
                    (b"access-control-allow-methods", METHODS.encode()),
                    (b"access-control-allow-headers", ", ".join(sorted(asked)).encode()),
                    (b"access-control-max-age", MAX_AGE.encode()),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = EXPOSED
            headers.add_vary_header("Origin")
        await send(message)

    return sending


def _vary(send: Send) -> Send:
    """Answers differ by ``Origin``: caches must not give one origin's to another."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableHeaders(scope=message).add_vary_header("Origin")
        await send(message)

    return sending


def _tokens(value: str) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())
