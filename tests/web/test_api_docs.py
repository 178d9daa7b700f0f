"""/api/v1/docs works with no internet: Swagger UI from a package, served by Balsam,
and the page loads nothing from another host."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser


def test_the_page_and_its_assets_are_served_by_balsam(anon: httpx.Client) -> None:
    page = anon.get("/api/v1/docs")
    assert page.status_code == 200
    assert "://" not in page.text  # every URL is Balsam's own
    policy = page.headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert "unsafe-inline" not in script_src and "'sha256-" in script_src
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        asset = anon.get(f"/api/v1/docs/assets/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert len(asset.content) > 10_000
    assert anon.get("/api/v1/docs/assets/..%2f__init__.py").status_code == 404
    assert anon.get("/api/v1/docs/assets/core.py").status_code == 404


def test_the_docs_render_the_operations_without_leaving_the_machine(
    chromium: Browser, live_url: str
) -> None:
    context = chromium.new_context()
    elsewhere: list[str] = []
    ours = urlsplit(live_url).netloc
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if urlsplit(route.request.url).netloc == ours
            else (elsewhere.append(route.request.url), route.abort())[1]
        ),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_url}/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 50
    assert elsewhere == []
    assert not [e for e in errors if "Content Security Policy" in e]
    context.close()
