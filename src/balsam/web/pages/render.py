"""Rendering pages: one Jinja2 environment per language, autoescaping on.

Every page is sent with a strict Content-Security-Policy: styles, images and
scripts only from Balsam itself (images also as ``data:``, which rendered notebooks
use for their plots once their bytes are checked to be an image), no inline script or style, forms
post only to Balsam, never framed, the referrer kept on Balsam. Nothing loads
from another host.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse
from starlette.requests import Request

from balsam.domain.projects.naming import encode_file_id
from balsam.web.origins import (
    on_workspace_port,
    opening_link,
    portal_origin,
    url_origin,
    workspace_origin,
)
from balsam.web.pages import activity, i18n, states
from balsam.web.pages.sizes import human_size

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
        "connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # A window a workspace page opens on a portal page is cut off from it (where
    # workspaces share the portal's origin; see balsam.web.origins).
    "Cross-Origin-Opener-Policy": "same-origin",
}
STATIC_ROOT = files("balsam.web.pages") / "static"


@functools.cache
def static_version(name: str) -> str:
    """A short hash of a static file's content: its URL changes when it does, so
    browsers may cache it for good."""
    return hashlib.sha256((STATIC_ROOT / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_version(name)}"


@functools.cache
def environment(language: str) -> jinja2.Environment:
    """The template environment of ``language`` (shared by threads: read-only)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("balsam.web.pages", "templates"),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["static_url"] = static_url
    env.globals["audit_labels"] = activity.labels(i18n.translations(language).gettext)
    env.globals["sync_labels"] = states.sync_labels(i18n.translations(language).gettext)
    env.filters["file_id"] = encode_file_id
    env.filters["size"] = functools.partial(human_size, language)
    env.filters["key_name"] = functools.partial(
        states.key_name, i18n.translations(language).gettext
    )
    return env


def render_html(request: Request, template: str, **context: Any) -> str:
    """``template`` rendered in the request's language, with what every page shows
    (the user and their CSRF token when logged in, the language switch, the request
    id) added to ``context``."""
    language = i18n.negotiate(request)
    session = getattr(request.state, "page_session", None)
    settings = request.app.state.ctx.settings
    portal = portal_origin(request, settings)
    common = {
        "lang": language,
        "languages": i18n.NAMES,
        "session": session,
        "nav": "",
        "user": session.actor if session else None,
        "csrf": session.csrf if session else "",
        "request_id": str(getattr(request.state, "request_id", "")),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        # A link that opens a workspace's /workspaces/<id>/… address (by the hand-over).
        "workspace_href": functools.partial(opening_link, request, settings),
        # Balsam as the user reached it (clone URLs on the pages use it).
        "portal_base": portal,
        # Prefixed to the portal's links on a page the workspace port answers (an
        # error page of the proxy), which serves nothing else.
        "portal": portal if on_workspace_port(request.scope, settings) else "",
    }
    return environment(language).get_template(template).render({**common, **context})


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page as an HTML response with the security headers."""
    return HTMLResponse(
        render_html(request, template, **context),
        status_code=status,
        headers={**security_headers(request), **(headers or {})},
    )


def security_headers(request: Request) -> dict[str, str]:
    """:data:`SECURITY_HEADERS`, with forms also allowed to end on the workspaces'
    origin (the log-in form's redirect chain leads there when it was asked for a
    workspace) and on the identity provider's (logging out goes on to sign out there):
    ``form-action`` covers redirects too."""
    settings = request.app.state.ctx.settings
    origins = [
        origin
        for origin in (
            workspace_origin(request, settings, "*"),  # all of them
            url_origin(settings.oidc.issuer) if settings.oidc.issuer else None,
        )
        if origin
    ]
    if not origins:
        return dict(SECURITY_HEADERS)
    csp = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", "form-action 'self' " + " ".join(origins)
    )
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}
