"""uvicorn's WebSocket protocol, quiet about the sockets Balsam refuses.

The proxy refuses a WebSocket it does not let in (no session, another user's
workspace) with an HTTP response (the ASGI ``websocket.http.response`` extension:
401/403/404 with problem+json). uvicorn's websockets (sans-I/O) protocol sends it,
but does not count the handshake as done, and then logs every refusal as
"ERROR: ASGI callable returned without completing handshake." An operator's log
would fill with errors that are ordinary refusals (after a logout JupyterLab keeps
reconnecting). This protocol counts a sent refusal as the end of the handshake, as
uvicorn's wsproto protocol does (uvicorn issue: Kludex/uvicorn#3138).
"""

from __future__ import annotations

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class RefusingWebSocketsProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` whose refusals are not logged as errors."""

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            self.handshake_complete = True  # the refusal is on the wire: done
