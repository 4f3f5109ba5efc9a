"""The HTTP service: a Litestar app over one `Gallery`.

Everything is wired in `create_app`: routes, the error handler, the API-key guard, rate
limit, CORS, metrics and the lifespan that opens the gallery. Handlers (in
`service/routes/`) only turn HTTP into gallery calls; CPU-bound work runs in the
runtime's bounded worker pool, so the event loop keeps answering while photos are
processed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from embeddings.registry import LoadedModels
from service.api_docs import doc_plugins
from service.config import Settings
from service.errors import handle_error
from service.litestar_fixes import fix_allow_header
from service.metrics import Metrics
from service.opening import load_configured_models, open_served_gallery
from service.routes import catalogue, identify, ops
from service.runtime import Runtime
from service.security import require_api_key
from service.web import web_handlers

__all__ = ["create_app"]

# Probes and scrapes must never be refused: a throttled probe gets a healthy pod killed.
_NOT_RATE_LIMITED = ("/health", "/ready", "/metrics")
_DOCS = "/schema"


class _MeterRequests(ASGIMiddleware):
    """Counts every routed request by route template, method and status."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, capture)
        finally:
            runtime: Runtime | None = scope["app"].state.get("runtime")
            if runtime is not None:
                route = scope.get("path_template") or scope["path"]
                runtime.metrics.observe_request(
                    route, scope["method"], status, time.perf_counter() - started
                )


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the gallery in the background for the app's lifetime (so /health answers at
    once, whatever a rebuild costs); closing it saves the derived index."""
    settings: Settings = app.state.settings
    models: LoadedModels | None = app.state.models
    if models is None:
        models = await anyio.to_thread.run_sync(load_configured_models, settings)
    runtime = Runtime(settings, Metrics())
    app.state.runtime = runtime

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(runtime.open, partial(open_served_gallery, settings, models))
        tasks.start_soon(runtime.keep_calibrated)
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
    # Shutting down waited for an opening or a refit in progress; now save and close.
    await anyio.to_thread.run_sync(runtime.close)


async def _wait_for_catalogue(request: Request) -> None:
    """Every route but the probes needs the catalogue: wait for it to open (briefly),
    else 503 with Retry-After."""
    if not request.route_handler.opt.get("public") and not request.url.path.startswith(_DOCS):
        await request.app.state.runtime.wait_open()


def _provide_runtime(state: State) -> Runtime:
    return state.runtime


def create_app(settings: Settings, models: LoadedModels | None = None) -> Litestar:
    """Build the service.

    Args:
        settings: the configuration; the gallery in `settings.data_dir` is opened when
            the app starts and closed when it stops.
        models: deep models already loaded (so `whaleid serve` reports a damaged model
            in one line before starting); None loads those of `settings.models_dir` when
            the app starts.

    Returns:
        The app, ready for uvicorn or Litestar's TestClient.
    """
    middleware: list = [_MeterRequests()]
    if settings.rate_limit_per_minute:
        limit = RateLimitConfig(
            rate_limit=("minute", settings.rate_limit_per_minute), exclude=list(_NOT_RATE_LIMITED)
        )
        middleware.append(limit.middleware)
    return Litestar(
        route_handlers=[
            ops.health,
            ops.ready,
            ops.metrics,
            ops.export,
            identify.identify,
            identify.predict_single,
            # Batches get their own body limit; everything else the one-photo limit.
            Router(
                "/",
                route_handlers=[identify.identify_batch, identify.predict_batch],
                request_max_body_size=settings.max_batch_bytes + identify.MULTIPART_OVERHEAD,
            ),
            catalogue.enrol,
            catalogue.list_individuals,
            catalogue.create_individual,
            catalogue.get_individual,
            catalogue.update_individual,
            catalogue.merge_individual,
            catalogue.delete_individual,
            catalogue.add_images,
            catalogue.get_image,
            catalogue.get_image_file,
            catalogue.get_image_thumbnail,
            catalogue.delete_image,
            catalogue.review,
            *web_handlers(),
        ],
        dependencies={"runtime": Provide(_provide_runtime, sync_to_thread=False)},
        guards=[require_api_key],
        middleware=middleware,
        cors_config=CORSConfig(
            allow_origins=settings.cors_origins, expose_headers=[identify.BATCH_TOTAL]
        )
        if settings.cors_origins
        else None,
        exception_handlers={Exception: handle_error},
        before_request=_wait_for_catalogue,
        before_send=[fix_allow_header],
        lifespan=[_lifespan],
        state=State({"settings": settings, "models": models}),
        request_max_body_size=settings.max_upload_bytes + identify.MULTIPART_OVERHEAD,
        openapi_config=OpenAPIConfig(
            title="whaleid", version="1", path=_DOCS, render_plugins=doc_plugins()
        ),
    )
