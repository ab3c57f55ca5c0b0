"""The seed's endpoints: /info, /generate, /generate/stream (SSE) and /ws."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from sse_starlette.sse import EventSourceResponse

from llm_runtime import __version__
from llm_runtime.admission import start_stream
from llm_runtime.errors import (
    TOO_DEEP,
    InvalidRequest,
    RuntimeServeError,
    describe_validation_error,
    internal_error,
)
from llm_runtime.guards import json_problem
from llm_runtime.handlers.base import TextGeneration, TextStream
from llm_runtime.schemas import GenerateBody
from llm_runtime.serving import check_api_key, host_of, open_ws, result_unless_disconnected
from llm_runtime.sse import event_stream
from llm_runtime.text_formats import native_events, native_result
from llm_runtime.values import TextRequest

log = logging.getLogger("llm_runtime")
router = APIRouter(dependencies=[Depends(check_api_key)])
ws_router = APIRouter()


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    host = host_of(request)
    handler = host.require()
    description = handler.describe()
    return {
        "model_id": host.model_id,
        "family": description.family,
        # What generates: the handler's own engine (GGUF: llama.cpp), else the front's.
        "engine": description.details.get("engine") or request.app.state.config.load.engine,
        "runtime_version": __version__,
        "device": description.device,
        "dtype": description.dtype,
        "adapter": description.adapter,
        "base_model": (host.profile.info.base_model or {}).get("model_id")
        if host.profile
        else None,
        "training_report": adapter_training_report(description.adapter),
        "capabilities": dataclasses.asdict(description.capabilities),
        "endpoints": handler.served_endpoints(),
        "details": description.details,
        "model_info_source": host.profile.source if host.profile else None,
    }


# The adapter's own copy of its training report, written beside it by llm_runtime.training.
ADAPTER_REPORTS = ("adapter_info.json", "training_report.json")
REPORT_SUMMARY = (
    "training_started", "training_completed", "stop_reason", "method", "mode", "global_step",
    "epochs_completed", "final_metrics", "lora_config",
)  # fmt: skip


@functools.lru_cache(maxsize=8)
def adapter_training_report(adapter: str | None) -> dict[str, Any] | None:
    """A summary of the loaded adapter's training report for /info; None without one."""
    if not adapter:
        return None
    for name in ADAPTER_REPORTS:
        try:
            report = json.loads((Path(adapter) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict):
            summary = {key: report[key] for key in REPORT_SUMMARY if key in report}
            dataset = report.get("dataset_info")
            if isinstance(dataset, dict):
                summary["dataset_info"] = {k: v for k, v in dataset.items() if k != "files"}
            return summary
    return None


@router.post("/generate")
async def generate(request: Request, body: dict = Body(...)):
    handler = host_of(request).require()
    if not isinstance(handler, TextGeneration):
        return await handler.generate(body=body)
    parsed = GenerateBody.model_validate(body)
    text_request = parsed.to_text_request()
    stream = await start_stream(handler, text_request)
    if parsed.stream:
        return native_sse(stream, text_request)
    result = await result_unless_disconnected(stream, request)
    return native_result(result, text_request)


@router.post("/generate/stream")
async def generate_stream(request: Request, body: GenerateBody):
    text_request = body.to_text_request()
    handler = host_of(request).require_capability(TextGeneration, "POST /generate/stream")
    return native_sse(await start_stream(handler, text_request), text_request)


@router.get("/generate/stream")
async def generate_stream_get(request: Request):
    """EventSource can only GET: the body's fields come as query parameters."""
    params: dict[str, Any] = dict(request.query_params)
    if "stop" in params:
        params["stop"] = request.query_params.getlist("stop")
    if "messages" in params:
        params["messages"] = json_param("messages", params["messages"])
    text_request = GenerateBody.model_validate(params).to_text_request()
    handler = host_of(request).require_capability(TextGeneration, "GET /generate/stream")
    return native_sse(await start_stream(handler, text_request), text_request)


@ws_router.websocket("/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    """Each JSON message is a /generate body; tokens come back as the SSE events do."""
    if not await open_ws(websocket):
        return
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await receive_text(websocket)
            if message is not None:
                await answer_ws(websocket, message, functools.partial(_start_text, websocket))


async def receive_text(websocket: WebSocket) -> str | None:
    """The next text message; a binary frame is answered with an error event (None)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is not None:
        return message["text"]
    refusal = InvalidRequest("Binary frames are not accepted: send each request as JSON text.")
    await websocket.send_json(refusal.body())
    return None


StartStream = Callable[[dict], Awaitable[tuple[TextStream, TextRequest]]]


async def answer_ws(websocket: WebSocket, message: str, start: StartStream) -> None:
    """Stream the answer to one /ws message; `start` turns its body into a running stream.

    Every failure, before or during the stream, is sent as an error event on the socket.
    """
    try:
        body = json_param("message", message)
        if not isinstance(body, dict):
            raise InvalidRequest("Each message must be a JSON object (a /generate body).")
        stream, text_request = await start(body)
    except ValidationError as exc:
        await websocket.send_json(InvalidRequest(describe_validation_error(exc)).body())
        return
    except RuntimeServeError as exc:
        await websocket.send_json(exc.body())
        return
    except RecursionError:
        await websocket.send_json(InvalidRequest(TOO_DEEP, code="invalid_json").body())
        return
    except Exception as exc:  # answer, rather than drop the socket without a word
        await websocket.send_json(internal_error(exc, "WS /ws request failed").body())
        return
    try:
        async for event in native_events(stream, text_request):
            await websocket.send_json(event)
    except RuntimeServeError as exc:
        await websocket.send_json(exc.body())
    except WebSocketDisconnect:
        raise
    except Exception as exc:  # an answer, not a dropped socket (if it is still there)
        with contextlib.suppress(Exception):
            await websocket.send_json(internal_error(exc, "WS /ws stream failed").body())
    finally:
        stream.cancel()  # no-op when finished; stops the work when the socket went away


async def _start_text(websocket: WebSocket, body: dict) -> tuple[TextStream, TextRequest]:
    text_request = GenerateBody.model_validate(body).to_text_request()
    handler = websocket.app.state.host.require_capability(TextGeneration, "WS /ws")
    return await start_stream(handler, text_request), text_request


def native_sse(stream: TextStream, text_request: TextRequest) -> EventSourceResponse:
    """The /generate event stream (text pieces, then the result) of a running stream."""

    async def events():
        async for event in native_events(stream, text_request):
            yield {"data": json.dumps(event, ensure_ascii=False)}

    return event_stream(events(), stream.cancel)


def json_param(name: str, raw: str) -> Any:
    """raw parsed as JSON; malformed, too deep or non-Unicode JSON is a 400."""
    problem = json_problem(raw)
    if problem is not None:
        raise InvalidRequest(f"{name!r}: {problem}", code="invalid_json")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{name!r} must be JSON: {exc}") from exc
