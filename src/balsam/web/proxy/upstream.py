"""Connections from the proxy to workspace servers.

A local workspace's server listens on a unix socket (``Endpoint.socket``); a
Kubernetes one on TCP. HTTP goes through one pooled aiohttp client per event
loop and upstream (a unix connector serves one socket), WebSockets through a
socket connected here. Every unix connection is checked before a byte is
sent: the process listening must run as the workspace's user
(:func:`balsam.providers.workspaces.runtime.connect_async`), so a workspace
whose user swapped its socket for a link to one of root's gets a refusal, not
a root-privileged client.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import aiohttp
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
from websockets.asyncio.client import ClientConnection, connect

from balsam.providers.workspaces.base import Endpoint
from balsam.providers.workspaces.runtime import connect_async

#: Seconds to connect to a server (socket or TCP) and, for WebSockets, to open.
CONNECT_TIMEOUT = 15


class CheckedUnixConnector(aiohttp.UnixConnector):
    """A unix connector that refuses a socket not served by ``uid``."""

    def __init__(self, path: str, uid: int | None, **kwargs: object) -> None:
        super().__init__(path, **kwargs)  # type: ignore[arg-type]
        self.uid = uid

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        try:
            async with asyncio.timeout(timeout.sock_connect):
                sock = await connect_async(self.path, self.uid)
            _, proto = await self._loop.create_unix_connection(
                lambda: ResponseHandler(self._loop), sock=sock
            )
        except OSError as exc:
            raise UnixClientConnectorError(self.path, req.connection_key, exc) from exc
        return proto


def _session(endpoint: Endpoint) -> aiohttp.ClientSession:
    # Bodies pass through as they are (compressed or not); no cookie jar: the
    # browser keeps the server's cookies. aiohttp costs about half of httpx's
    # time per request here, which matters for page loads of many small files.
    connector: aiohttp.BaseConnector = (
        aiohttp.TCPConnector(limit=200, keepalive_timeout=30)
        if endpoint.socket is None
        else CheckedUnixConnector(
            endpoint.socket, endpoint.socket_uid, limit=200, keepalive_timeout=30
        )
    )
    return aiohttp.ClientSession(
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        read_bufsize=1 << 20,
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT
        ),
    )


def _key(endpoint: Endpoint) -> tuple[str | None, int | None]:
    return endpoint.socket, endpoint.socket_uid


@dataclass
class ClientPool:
    """Pooled HTTP clients of one event loop: one per unix socket, one for TCP.

    A workspace keeps its socket path across restarts, so there is one client per
    workspace ever opened since Balsam started (a few KiB each; idle connections
    close after 30 s). None is closed while it may carry other requests: a dead
    server's connections are dropped by the client itself."""

    loop: asyncio.AbstractEventLoop
    sessions: dict[tuple[str | None, int | None], aiohttp.ClientSession] = field(
        default_factory=dict
    )

    def client(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        session = self.sessions.get(_key(endpoint))
        if session is None or session.closed:
            session = self.sessions[_key(endpoint)] = _session(endpoint)
        return session

    async def close(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            await session.close()


async def websocket(
    endpoint: Endpoint, url: str, headers: list[tuple[str, str]], subprotocols: list[str] | None
) -> ClientConnection:
    """The server's WebSocket at ``url``; raises ``OSError``, ``TimeoutError`` or
    ``websockets.InvalidHandshake``."""
    sock: socket.socket | None = None
    if endpoint.socket is not None:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            sock = await connect_async(endpoint.socket, endpoint.socket_uid)
    return await connect(
        url,
        additional_headers=headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        max_size=None,
        compression=None,
        open_timeout=CONNECT_TIMEOUT,
        ping_interval=None,
        sock=sock,  # None: connect to the URL's host over TCP
    )
