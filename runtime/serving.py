"""What every route needs: the model host (loads in the background), auth, disconnect watching."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import threading
import time
from dataclasses import replace
from typing import TypeVar

from fastapi import Request, WebSocket

from llm_runtime.errors import (
    ClientGone,
    NotReady,
    RuntimeServeError,
    Unauthorized,
    UnsupportedEndpoint,
)
from llm_runtime.handlers import handler_class
from llm_runtime.handlers.base import Handler, TextStream
from llm_runtime.metrics import Metrics
from llm_runtime.profile import ModelProfile, load_profile
from llm_runtime.values import ServeConfig, TextResult

log = logging.getLogger("llm_runtime")
Capability = TypeVar("Capability")
DISCONNECT_POLL_S = 0.1
WS_PROTOCOL = "llm-runtime"
KEY_PROTOCOL_PREFIX = "bearer."


class ModelHost:
    """Owns the handler: loads it on a background thread so the server answers at once."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self.config, self.metrics = config, metrics
        self.state = "loading"
        self.error: str | None = None
        self.handler: Handler | None = None
        self.profile: ModelProfile | None = None
        self.started_at = time.time()
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Called on the serving event loop: loading runs on a thread of its own."""
        self.loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, name="llm-model-loader", daemon=True).start()

    def close(self) -> None:
        if self.handler is not None:
            self.handler.close()

    def require(self) -> Handler:
        """The loaded handler, or NotReady (503) saying why there is none yet."""
        if self.handler is not None:
            return self.handler
        if self.state == "failed":
            raise NotReady(f"The model failed to load: {self.error}", code="model_load_failed")
        raise NotReady("The model is still loading; retry when GET /health/ready answers 200.")

    def require_capability(self, capability: type[Capability], endpoint: str) -> Capability:
        """The handler if it has capability, else 404 naming the endpoints it does serve."""
        handler = self.require()
        if not isinstance(handler, capability):
            raise UnsupportedEndpoint(
                f"{endpoint} is not available for a {handler.family!r} model. "
                f"This model serves: {', '.join(handler.served_endpoints())}."
            )
        return handler

    @property
    def model_id(self) -> str:
        return self.profile.model_id if self.profile else self.config.model_dir.name

    def _load(self) -> None:
        started = time.perf_counter()
        log.info("Loading model from %s", self.config.model_dir)
        try:
            self.profile = load_profile(self.config.model_dir)
            handler = handler_class(self.profile.family, self.config.load.engine)(
                metrics=self.metrics
            )
            settings = replace(self.config.load, trust_remote_code=self.profile.trust_remote_code)
            handler.load(profile=self.profile, settings=settings)
            if self.loop is not None:
                asyncio.run_coroutine_threadsafe(handler.started(), self.loop).result()
        except RuntimeServeError as exc:
            self._failed(exc.message)
        except Exception as exc:  # keep serving /health with the reason
            log.exception("Model loading failed")
            self._failed(f"{type(exc).__name__}: {exc}")
        else:
            self.handler, self.state = handler, "ready"
            self.metrics.set("model_loaded", 1, "1 once the model is loaded")
            log.info(
                "Model loaded successfully (%s, family %s) in %.1fs",
                self.profile.model_id,
                self.profile.family,
                time.perf_counter() - started,
            )

    def _failed(self, message: str) -> None:
        self.state, self.error = "failed", message
        log.error("Error: %s", message)


def host_of(request: Request) -> ModelHost:
    return request.app.state.host


async def check_api_key(request: Request) -> None:
    """FastAPI dependency: Bearer API key on inference routes when --api-key is set (async, so
    FastAPI runs it on the event loop, not through a worker thread, on every request)."""
    _check_key(request.app.state.config.api_key, request.headers.get("authorization"), None)


def check_ws_api_key(websocket: WebSocket) -> None:
    """Browsers cannot set headers on WebSockets: the key may come as the subprotocol
    `bearer.<base64url key>` (the web UI's way, kept out of URLs and logs) or `?api_key=`."""
    config = websocket.app.state.config
    _check_key(
        config.api_key,
        websocket.headers.get("authorization"),
        _subprotocol_key(websocket) or websocket.query_params.get("api_key"),
    )


def has_valid_key(request: Request) -> bool:
    """True when no key is configured or the request carries the right one."""
    try:
        _check_key(request.app.state.config.api_key, request.headers.get("authorization"), None)
    except Unauthorized:
        return False
    return True


async def open_ws(websocket: WebSocket) -> bool:
    """Accept a WebSocket that carries the API key (when one is set); else close it (1008)."""
    try:
        check_ws_api_key(websocket)
    except RuntimeServeError as exc:
        await websocket.close(code=1008, reason=exc.message)
        return False
    await accept_ws(websocket)
    return True


async def accept_ws(websocket: WebSocket) -> None:
    """Accept, choosing the `llm-runtime` subprotocol when the client offered it."""
    offered = _subprotocols(websocket)
    await websocket.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)


def _subprotocols(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [item.strip() for item in header.split(",") if item.strip()]


def _subprotocol_key(websocket: WebSocket) -> str | None:
    for item in _subprotocols(websocket):
        if item.startswith(KEY_PROTOCOL_PREFIX):
            encoded = item[len(KEY_PROTOCOL_PREFIX) :]
            with contextlib.suppress(ValueError):
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    return None


def _check_key(expected: str | None, authorization: str | None, query_key: str | None) -> None:
    if not expected:
        return
    given = query_key or ""
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(
            "Missing or wrong API key: send the header 'Authorization: Bearer <key>'."
        )


async def result_unless_disconnected(stream: TextStream, request: Request) -> TextResult:
    """Wait for stream's result; cancel the generation if the client disconnects first."""
    task = asyncio.ensure_future(stream.result())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                log.info("Client disconnected: generation cancelled")
                raise ClientGone()
    finally:
        if not task.done():
            stream.cancel()
            task.cancel()
