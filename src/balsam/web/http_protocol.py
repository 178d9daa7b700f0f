"""uvicorn's HTTP protocol, answering requests it cannot parse with problem+json.

A request line or header uvicorn's parser refuses (a control byte in a header,
say) never reaches the app, so the app's error handlers cannot answer it:
uvicorn writes a plain-text 400 itself. This protocol writes the same 400 as
every other error Balsam answers: ``application/problem+json``.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _problem(detail: str) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": "Bad request",
            "status": 400,
            "detail": detail,
            "reason": "malformed-request",
        }
    ).encode()


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose parse errors are problem+json (see the module)."""

    def send_400_response(self, msg: str) -> None:
        body = _problem(f"The request could not be parsed: {msg}")
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
