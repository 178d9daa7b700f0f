"""Files sent as themselves from the portal (a library's, a project's)."""

from __future__ import annotations

import mimetypes
import posixpath
from urllib.parse import quote

from fastapi import Response

from balsam.web.pages.render import SECURITY_HEADERS


def as_file(path: str, data: bytes, *, attachment: bool) -> Response:
    """The file's bytes, never run by the browser: images as themselves (an SVG under
    a sandbox CSP), everything else as a download."""
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = posixpath.basename(path).replace('"', "")
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    if attachment or not kind.startswith("image/"):
        kind = "application/octet-stream"
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return Response(data, media_type=kind, headers=headers)
