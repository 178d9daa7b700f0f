"""The API's interactive documentation at ``/api/v1/docs``, with no internet.

Swagger UI's assets come from a Python package (``fastapi-offline`` ships
Swagger UI 5, which reads OpenAPI 3.1) and are served by Balsam itself; the
page loads nothing from another host. Its one inline script is allowed by its
hash in the Content-Security-Policy (Swagger UI sets inline styles, so styles
may be inline; scripts may not).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from balsam import __version__

router = APIRouter(include_in_schema=False)

DOCS = "/api/v1/docs"
OPENAPI = "/api/v1/openapi.json"
ASSETS = f"{DOCS}/assets"
#: The files the page needs, and their media types; nothing else is served.
_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def _assets() -> Traversable:
    return resources.files("fastapi_offline") / "static"


def _page() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=OPENAPI,
        title=f"Balsam API {__version__}",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )
    html = bytes(page.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' "
                "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@router.get(DOCS)
def docs() -> HTMLResponse:
    return _page()


@router.get(ASSETS + "/{name}")
def asset(name: str) -> Response:
    media_type = _FILES.get(name)
    if media_type is None:
        return Response(status_code=404)
    return Response(
        (_assets() / name).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
