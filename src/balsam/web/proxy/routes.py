"""HTTP and WebSocket forwarding for ``/workspaces/<id>/...``.

Requests are checked by :class:`ProxyAccess`, then forwarded to the
workspace's server with its token in ``Authorization: token ...``. Balsam's
own credentials (session cookie, bearer token) are removed, so the server
never sees them; and the server's token is removed from HTML pages
(JupyterLab writes it into its page config), so it never reaches the browser.
Bodies stream both ways; only HTML pages and small bodies are read whole.
How the proxy connects (unix sockets, checked peers) is in :mod:`.upstream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import aiohttp
import websockets
from fastapi import APIRouter, Request, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response, StreamingResponse
from websockets.asyncio.client import ClientConnection

from balsam.context import AppContext
from balsam.errors import BalsamError
from balsam.providers.workspaces.base import Endpoint
from balsam.web.errors import error_page, problem
from balsam.web.origins import HANDOVER_PATH, on_workspace_port, portal_origin
from balsam.web.pages.i18n import COOKIE as LANGUAGE_COOKIE
from balsam.web.proxy import upstream as upstreams
from balsam.web.proxy.access import Passage, ProxyAccess, refusal

router = APIRouter(include_in_schema=False)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
#: Never forwarded upstream: Balsam's credentials, and browser origin headers
#: (the proxy checks origin itself; the server sees a same-host request).
DROP_UPSTREAM = HOP_BY_HOP | {
    "authorization",
    "cookie",
    "origin",
    "referer",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: Responses up to this size (by Content-Length) are passed on whole, not streamed.
BUFFER_LIMIT = 256 * 1024
#: HTML pages are read whole (to remove the server's token): at most this many bytes,
#: compressed or decoded. JupyterLab's pages are tens of kilobytes.
PAGE_LIMIT = 8 * 1024 * 1024


def _ctx(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx


def _access(conn: HTTPConnection) -> ProxyAccess:
    access: ProxyAccess = conn.app.state.proxy_access  # set by create_app
    return access


def _pool(conn: HTTPConnection) -> upstreams.ClientPool:
    """The pooled clients of this event loop (uvicorn has one; tests may run several)."""
    state, loop = conn.app.state, asyncio.get_running_loop()
    pool: upstreams.ClientPool | None = getattr(state, "proxy_clients", None)
    if pool is None or pool.loop is not loop:
        state.proxy_clients = pool = upstreams.ClientPool(loop)
    return pool


def _client(conn: HTTPConnection, endpoint: Endpoint) -> aiohttp.ClientSession:
    return _pool(conn).client(endpoint)


async def close_client(state: object) -> None:
    """Close the pooled clients (app shutdown)."""
    pool: upstreams.ClientPool | None = getattr(state, "proxy_clients", None)
    if pool is not None:
        await pool.close()
        state.proxy_clients = None  # type: ignore[attr-defined]


def _upstream_headers(conn: HTTPConnection, passage: Passage) -> list[tuple[str, str]]:
    own = _own_cookies(conn)
    headers = [(k, v) for k, v in conn.headers.items() if k not in DROP_UPSTREAM]
    cookies = [f"{k}={v}" for k, v in conn.cookies.items() if k not in own]
    if cookies:
        headers.append(("cookie", "; ".join(cookies)))
    headers.append(("authorization", f"token {passage.endpoint.token}"))
    return headers


def _target(passage: Passage, conn: HTTPConnection, path: str, scheme: str = "http") -> str:
    url = passage.endpoint.url.replace("http://", f"{scheme}://", 1) + path
    return f"{url}?{conn.url.query}" if conn.url.query else url


async def _pass(
    conn: HTTPConnection, workspace_id: str, *, websocket: bool, method: str = "GET"
) -> Passage | Response:
    access = _access(conn)
    try:
        # Most requests of a page load hit the cache: no thread, no database.
        cached = access.peek(conn, workspace_id, websocket=websocket, method=method)
        if cached is not None:
            return cached
        return await run_in_threadpool(access.decide, conn, workspace_id)
    except BalsamError as exc:
        if exc.status == 401 and _is_page_visit(conn, method, websocket):
            target = conn.url.path + (f"?{conn.url.query}" if conn.url.query else "")
            settings = access.ctx.settings
            next_query = f"?next={quote(target, safe='')}"
            if on_workspace_port(conn.scope, settings):
                # No session on the workspaces' host: the portal hands its own over
                # (after a log-in, if it has none either) and sends the browser back.
                handover = portal_origin(conn, settings) + HANDOVER_PATH
                return RedirectResponse(handover + next_query, status_code=303)
            return RedirectResponse(f"/login{next_query}", status_code=303)
        status, detail, headers = refusal(exc)
        if isinstance(conn, Request) and _is_page_visit(conn, method, websocket):
            return error_page(status, exc, request=conn, headers=headers)  # a person reads it
        return problem(status, detail, reason=exc.reason, headers=headers)


def _is_page_visit(conn: HTTPConnection, method: str, websocket: bool) -> bool:
    """A browser opening a page (not a script, not an API call): send it to log in."""
    return (
        not websocket
        and method == "GET"
        and "authorization" not in conn.headers
        and "text/html" in conn.headers.get("accept", "")
    )


def _names_own_cookie(header: str, own_cookies: frozenset[str]) -> bool:
    """Whether a Set-Cookie value could set one of ``own_cookies``: its name, or, for
    a nameless cookie (``=balsam_session=…``, which some browsers read as a name),
    the start of its value."""
    name, _, rest = header.partition("=")
    return (name.strip() or rest.split("=", 1)[0].strip()) in own_cookies


def _own_cookies(conn: HTTPConnection) -> frozenset[str]:
    auth = _access(conn).ctx.settings.auth
    return frozenset(
        {auth.cookie_name, auth.workspace_cookie_name, auth.sign_in_cookie_name, LANGUAGE_COOKIE}
    )


#: Headers a workspace's server may not set on Balsam's origin: a Cross-Origin-Opener-
#: Policy equal to the portal's would let its pages keep the portal windows they open;
#: Service-Worker-Allowed would let a worker claim paths beyond the workspace's.
#: (Server and Date: uvicorn sends its own; two of each confuse clients.)
NOT_FROM_WORKSPACES = frozenset(
    {"cross-origin-opener-policy", "service-worker-allowed", "server", "date"}  # uvicorn's
)


def _response_headers(
    upstream: aiohttp.ClientResponse, own_cookies: frozenset[str]
) -> list[tuple[str, str]]:
    """The workspace server's response headers as the browser gets them: without
    hop-by-hop headers, those of :data:`NOT_FROM_WORKSPACES`, and any cookie named
    like one of Balsam's own (``own_cookies``: a workspace must not set the portal's
    session, which belongs to the host whatever the port)."""
    headers = []
    for key, value in upstream.headers.items():
        lower = key.lower()
        if lower in HOP_BY_HOP or lower in NOT_FROM_WORKSPACES:
            continue
        if lower == "set-cookie" and _names_own_cookie(value, own_cookies):
            continue
        if lower == "location" and value.startswith(("http://127.0.0.1", "http://localhost")):
            parts = urlsplit(value)  # keep redirects on Balsam's origin
            value = parts.path + (f"?{parts.query}" if parts.query else "")
        headers.append((key, value))
    return headers


async def _send(
    request: Request, workspace_id: str, path: str
) -> tuple[Passage, aiohttp.ClientResponse] | Response:
    """The passage and the server's response (body not read yet), or the refusal."""
    has_body = request.method not in ("GET", "HEAD", "OPTIONS")
    for attempt in (1, 2):
        passage = await _pass(request, workspace_id, websocket=False, method=request.method)
        if isinstance(passage, Response):
            return passage
        try:
            return passage, await _client(request, passage.endpoint).request(
                request.method,
                _target(passage, request, path),
                headers=_upstream_headers(request, passage),
                allow_redirects=False,
                data=request.stream() if has_body else None,
            )
        except aiohttp.ClientConnectorError:
            # The cached passage may point at a server that was stopped or moved:
            # decide again once (the answer is then e.g. 503 "stopped"). A body
            # cannot be sent twice.
            _access(request).forget(workspace_id)
            if attempt == 2 or has_body:
                break
        except (aiohttp.ClientError, TimeoutError):
            break
    return problem(502, "The workspace's server did not answer.", reason="bad-gateway")


class _PageTooLarge(Exception):
    pass


async def _read_page(upstream: aiohttp.ClientResponse) -> bytes:
    """The page's bytes as sent, at most ``PAGE_LIMIT`` of them."""
    body = b""
    while chunk := await upstream.content.read(65536):
        body += chunk
        if len(body) > PAGE_LIMIT:
            raise _PageTooLarge
    return body


def _without_token(body: bytes, encoding: str, token: str) -> bytes:
    """An HTML page, decoded (at most ``PAGE_LIMIT`` bytes: a small compressed page can
    unpack to gigabytes) and with the server's token removed."""
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        body = inflater.decompress(body, PAGE_LIMIT + 1)
        if len(body) > PAGE_LIMIT or inflater.unconsumed_tail:
            raise _PageTooLarge
    return body.replace(token.encode(), b"")


async def _stream(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


@router.api_route("/workspaces/{workspace_id}/{path:path}", methods=METHODS)
async def proxy_http(workspace_id: str, path: str, request: Request) -> Response:
    if request.headers.get("service-worker") == "script":
        # A worker registered from a workspace would outlive it and intercept every
        # page of its origin in the user's browser.
        return problem(403, "Workspaces may not register service workers.", reason="refused")
    sent = await _send(request, workspace_id, path)
    if isinstance(sent, Response):
        return sent
    passage, upstream = sent
    headers = _response_headers(upstream, _own_cookies(request))
    response: Response
    if upstream.headers.get("content-type", "").startswith("text/html"):
        try:
            async with upstream:
                body = _without_token(
                    await _read_page(upstream),
                    upstream.headers.get("content-encoding", ""),
                    passage.endpoint.token,
                )
        except (_PageTooLarge, zlib.error):
            return problem(
                502,
                f"The workspace's server sent an HTML page over "
                f"{PAGE_LIMIT // 2**20} MiB or one that cannot be decoded.",
                reason="bad-gateway",
            )
        headers = [
            (k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")
        ]
        headers.append(("content-length", str(len(body))))
        response = Response(body, status_code=upstream.status)
    elif (upstream.content_length or BUFFER_LIMIT + 1) <= BUFFER_LIMIT:
        # Small bodies in one piece: a plain response costs less than a stream.
        async with upstream:
            response = Response(await upstream.read(), status_code=upstream.status)
    else:
        response = StreamingResponse(_stream(upstream), status_code=upstream.status)
    response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response


async def _deny_websocket(websocket: WebSocket, refused: Response) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(refused)
    else:
        await websocket.close(code=1008)


async def _connect_upstream(
    websocket: WebSocket, workspace_id: str, path: str
) -> tuple[ClientConnection, Passage] | Response:
    """The upstream WebSocket and who opened it, or the refusal to send (see
    proxy_http on retrying)."""
    for attempt in (1, 2):
        passage = await _pass(websocket, workspace_id, websocket=True)
        if isinstance(passage, Response):
            return passage
        try:
            upstream = await upstreams.websocket(
                passage.endpoint,
                _target(passage, websocket, path, scheme="ws"),
                _upstream_headers(websocket, passage),
                websocket.scope.get("subprotocols") or None,
            )
            return upstream, passage
        except OSError:
            _access(websocket).forget(workspace_id)
            if attempt == 2:
                break
        except (websockets.InvalidHandshake, TimeoutError):
            break
    return problem(502, "The workspace's server refused the connection.", reason="bad-gateway")


@router.websocket("/workspaces/{workspace_id}/{path:path}")
async def proxy_websocket(websocket: WebSocket, workspace_id: str, path: str) -> None:
    connected = await _connect_upstream(websocket, workspace_id, path)
    if isinstance(connected, Response):
        await _deny_websocket(websocket, connected)
        return
    upstream, passage = connected
    # A logout ends the relay: the socket was let in once, not for as long as it lasts.
    with _access(websocket).open_socket(passage.username) as ended:
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _pump(websocket, upstream, ended)


async def _pump(websocket: WebSocket, upstream: ClientConnection, ended: asyncio.Event) -> None:
    async def to_upstream() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            await upstream.send(data if data is not None else message.get("text", ""))

    async def to_client() -> None:
        async for data in upstream:
            if isinstance(data, bytes):
                await websocket.send_bytes(data)
            else:
                await websocket.send_text(data)

    tasks = [
        asyncio.create_task(to_upstream()),
        asyncio.create_task(to_client()),
        asyncio.create_task(ended.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await upstream.close()
        with contextlib.suppress(Exception):
            await websocket.close()
