"""Every error the runtime raises, and the one place they become HTTP answers.

Answers use OpenAI's shape, `{"error": {"message", "type", "code"}}`, so OpenAI clients raise
their usual exception classes with our message.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("llm_runtime")


class RuntimeServeError(Exception):
    """Base of the errors the server turns into answers."""

    status = 500
    error_type = "server_error"
    code = "internal_error"
    retry_after: int | None = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def body(self) -> dict:
        """The OpenAI-style error object this error answers with (JSON, SSE and WS alike)."""
        return error_body(self.message, self.error_type, self.code)


class InvalidRequest(RuntimeServeError):
    status, error_type, code = 400, "invalid_request_error", "invalid_request"


class Unauthorized(RuntimeServeError):
    status, error_type, code = 401, "authentication_error", "invalid_api_key"


class UnsupportedEndpoint(RuntimeServeError):
    status, error_type, code = 404, "invalid_request_error", "unsupported_endpoint"


class Overloaded(RuntimeServeError):
    status, error_type, code, retry_after = 429, "rate_limit_error", "queue_full", 1


class NotReady(RuntimeServeError):
    status, error_type, code, retry_after = 503, "service_unavailable", "model_not_ready", 5


class OutOfMemory(RuntimeServeError):
    status, error_type, code = 503, "server_error", "out_of_memory"


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class ModelLoadError(RuntimeServeError):
    """The model could not be loaded; the message says what to try next."""


class UnsupportedFamily(ModelLoadError):
    code = "unsupported_family"


def error_body(message: str, error_type: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": error_type, "code": code, "param": None}}


def error_response(exc: RuntimeServeError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def describe_validation_error(exc: RequestValidationError | ValidationError) -> str:
    """'body.messages: List should have at least 1 item; ...' from pydantic's error list."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception -> answer table on app."""

    @app.exception_handler(RuntimeServeError)
    async def _serve_error(_: Request, exc: RuntimeServeError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(InvalidRequest(describe_validation_error(exc)))

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        return error_response(InvalidRequest(describe_validation_error(exc)))

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = error_body(str(exc.detail), error_type, str(exc.status_code))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        return error_response(InvalidRequest(TOO_DEEP, code="invalid_json"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(internal_error(exc))


TOO_DEEP = "The JSON is nested too deeply; send a flatter body."


def internal_error(exc: BaseException, doing: str = "Internal error") -> RuntimeServeError:
    """A 500 naming what failed and an id; the traceback goes to the log under that id."""
    error_id = uuid.uuid4().hex[:12]
    log.error("%s (error id %s)", doing, error_id, exc_info=exc)
    return RuntimeServeError(
        f"{doing} (error id {error_id}); the server log has the details.",
        code="internal_error",
    )
