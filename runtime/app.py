"""The FastAPI application: public health and metrics routes, and the routers."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse

from llm_runtime import (
    __version__,
    docs_page,
    routes_media,
    routes_native,
    routes_openai,
    routes_ui,
)
from llm_runtime.errors import install_error_handlers
from llm_runtime.guards import RequestGuard
from llm_runtime.metrics import Metrics
from llm_runtime.serving import ModelHost, has_valid_key, host_of
from llm_runtime.values import ServeConfig

KNOWN_PATHS = {
    "/health", "/health/ready", "/info", "/metrics", "/generate", "/generate/stream",
    "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
    "/", "/interrupt", "/v1/images/generations", "/v1/audio/transcriptions", "/v1/audio/speech",
}  # fmt: skip


def create_app(config: ServeConfig) -> FastAPI:
    """The server for config; the model starts loading when the app starts."""
    metrics = Metrics()
    host = ModelHost(config, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        host.start()
        yield
        host.close()

    app = FastAPI(
        title="llm_runtime",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load scripts from a CDN; docs_page serves its own
        redoc_url=None,
    )
    app.state.config, app.state.host, app.state.metrics = config, host, metrics
    install_error_handlers(app)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestGuard, config=config)
    app.add_middleware(RequestCounter, metrics=metrics)
    docs_page.install(app)
    _public_routes(app)
    if config.load.engine == "vllm":  # first: /v1 text routes go to vLLM nearly as they are
        from llm_runtime.engines import vllm_routes

        app.include_router(vllm_routes.router)
    # Before the core routers: media-aware fronts of /generate, /ws and chat, media routes, UI.
    app.include_router(routes_media.router)
    app.include_router(routes_media.ws_router)
    app.include_router(routes_ui.router)
    app.include_router(routes_native.router)
    app.include_router(routes_native.ws_router)
    app.include_router(routes_openai.router)
    return app


def _public_routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health(request: Request) -> dict:
        host = host_of(request)
        return {
            "status": "ok",
            "model_state": host.state,
            "uptime_s": round(time.time() - host.started_at, 1),
        }

    @app.get("/health/ready")
    async def ready(request: Request) -> JSONResponse:
        host = host_of(request)
        error = host.error if has_valid_key(request) else None
        if host.state == "failed" and error is None:  # no paths or exception text for strangers
            error = "The model failed to load; the server log (or an API key) tells why."
        body = {"ready": host.state == "ready", "model_state": host.state, "error": error}
        headers = None if host.state == "ready" else {"Retry-After": "5"}
        return JSONResponse(body, status_code=200 if body["ready"] else 503, headers=headers)

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        text = request.app.state.metrics.render()
        engine_metrics = getattr(host_of(request).handler, "engine_metrics", None)
        if engine_metrics is not None:  # the engine's own metrics (vLLM: `vllm:` names)
            text = text.rstrip("\n") + "\n" + await engine_metrics()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


class RequestCounter:
    """Pure ASGI middleware counting responses by path and status.

    (Starlette's BaseHTTPMiddleware would hide client disconnects from the routes.)
    """

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.inc(
                    "http_requests_total",
                    help="HTTP requests by path and status",
                    path=path,
                    status=str(message["status"]),
                )
            await send(message)

        await self.app(scope, receive, counting_send)
