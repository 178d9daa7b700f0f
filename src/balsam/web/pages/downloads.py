"""Files sent as themselves from the portal (a library's, a project's)."""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import Response
from fastapi.responses import StreamingResponse

from balsam.web.pages.render import SECURITY_HEADERS


def as_stream(path: str, size: int, chunks: Iterator[bytes], *, attachment: bool) -> Response:
    """The file, read as it is sent, never run by the browser: images as themselves
    (an SVG under a sandbox CSP), everything else as a download."""
    kind, headers = _kind_and_headers(path, attachment=attachment)
    return StreamingResponse(
        chunks, media_type=kind, headers={**headers, "Content-Length": str(size)}
    )


def _kind_and_headers(path: str, *, attachment: bool) -> tuple[str, dict[str, str]]:
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = posixpath.basename(path).replace('"', "")
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    if attachment or not kind.startswith("image/"):
        kind = "application/octet-stream"
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return kind, headers
