"""The application factory: ``create_app(settings) -> ASGI app``.

Nothing is built at import time. ``create_app`` migrates the database, wires
the providers (built from settings unless given), and mounts the API and the
git smart-HTTP endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from balsam import __version__
from balsam.context import AppContext
from balsam.providers.bundle import Providers
from balsam.settings import Settings
from balsam.web.api.v1.data import STREAMED_UPLOADS
from balsam.web.cors import ApiCors
from balsam.web.errors import document_problems, document_security, install_error_handlers
from balsam.web.middleware import BodyLimitMiddleware, RequestIdMiddleware
from balsam.web.origin_split import OriginSplit
from balsam.wiring import build_context

API_DESCRIPTION = (
    "Balsam's REST API. Upstream BALSAM's paths, methods, parameters and field names "
    "work unchanged; status codes are precise and every error is application/problem+json."
)


def _document(app: FastAPI) -> None:
    """Errors as problem+json and the security schemes, in the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        return document_security(document_problems(original()))

    app.openapi = openapi  # type: ignore[method-assign]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Crash recovery first (``domain/recovery.py``), then background work that lives as
    long as the served app: knowledge-library sync, imports, runs,
    the workspace supervisor, and loading the search index so the first search
    does not wait for it."""
    from balsam.domain.data.import_worker import ImportWorker
    from balsam.domain.library.worker import LibrarySyncWorker
    from balsam.domain.recovery import RecoveryWorker, recover
    from balsam.domain.runs.worker import RunWorker
    from balsam.domain.search.service import SearchService
    from balsam.web.proxy.routes import close_client

    previous = getattr(app.state, "library_sync", None)
    worker = LibrarySyncWorker(app.state.ctx)
    worker.start()
    ctx: AppContext = app.state.ctx
    # Operations a crash interrupted are completed or undone before anything else runs.
    await run_in_threadpool(recover, ctx)
    # ... and later ones that could not undo themselves (storage was down) as soon as
    # storage is back.
    repairs = RecoveryWorker(ctx)
    repairs.start()
    imports = ImportWorker(ctx)
    imports.start()
    app.state.imports = imports
    runs = RunWorker(ctx)
    runs.start()
    app.state.runs = runs
    await run_in_threadpool(ctx.supervisor.start)
    threading.Thread(
        target=SearchService(app.state.ctx).warm, name="search-warm", daemon=True
    ).start()
    app.state.library_sync = worker
    try:
        yield
    finally:
        app.state.library_sync = previous
        await run_in_threadpool(worker.stop)
        await run_in_threadpool(repairs.stop)
        await run_in_threadpool(imports.stop)
        await run_in_threadpool(runs.stop)
        await run_in_threadpool(ctx.supervisor.shutdown)
        await close_client(app.state)


def create_app(
    settings: Settings | None = None,
    *,
    providers: Providers | None = None,
    ctx: AppContext | None = None,
) -> FastAPI:
    """Build one Balsam ASGI application."""
    from balsam.web import pages
    from balsam.web.api.v1 import router as api_router
    from balsam.web.api_docs import router as api_docs_router
    from balsam.web.git import router as git_router
    from balsam.web.proxy.access import ProxyAccess
    from balsam.web.proxy.handover import router as handover_router
    from balsam.web.proxy.routes import router as proxy_router

    settings = settings or Settings()
    ctx = ctx or build_context(settings, providers)
    app = FastAPI(
        title="Balsam API",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served from a package by web/api_docs.py: no CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.proxy_access = ProxyAccess(ctx)
    install_error_handlers(app)
    _document(app)
    # The proxy first: a page load is dozens of proxied requests, and routes are
    # matched in order (the hand-over's own address before the proxy's pattern).
    app.include_router(handover_router)
    app.include_router(proxy_router)
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(api_docs_router)
    app.include_router(git_router)
    pages.install(app)
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, streamed=STREAMED_UPLOADS
    )
    if settings.cors_origins:
        app.add_middleware(ApiCors, settings=settings)
    app.add_middleware(OriginSplit, settings=settings)
    app.add_middleware(RequestIdMiddleware)
    return app
