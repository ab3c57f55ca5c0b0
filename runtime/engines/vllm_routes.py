"""OpenAI routes on the vLLM engine: forwarded to vLLM nearly as they are.

What changes on the way: our API key and admission (429) come first, ``model`` names what
start.sh serves (the base model or the LoRA adapter in lora/), vLLM's errors take our error shape,
and reasoning deltas carry both ``reasoning_content`` and ``reasoning``, as on the other engine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llm_runtime.engines.asgi_client import AsgiResponse
from llm_runtime.engines.vllm_handler import VllmTextHandler
from llm_runtime.engines.vllm_stream import vllm_error
from llm_runtime.engines.vllm_tools import (
    StreamedCalls,
    answer_with_calls,
    constrained,
    forced_tools,
)
from llm_runtime.errors import InvalidRequest, RuntimeServeError
from llm_runtime.serving import check_api_key, host_of

router = APIRouter(prefix="/v1", dependencies=[Depends(check_api_key)])
REASONING_MARK = b'"reasoning'


@router.post("/chat/completions")
async def chat_completions(request: Request):
    return await forward(request, "/v1/chat/completions")


@router.post("/completions")
async def completions(request: Request):
    return await forward(request, "/v1/completions")


async def forward(request: Request, path: str):
    handler = host_of(request).require_capability(VllmTextHandler, f"POST {path}")
    body = await _json_body(request)
    tools = forced_tools(body) if path == "/v1/chat/completions" else None
    if tools:
        body = constrained(body, tools)
    release = handler.admit()
    try:
        body["model"] = handler.served_name
        response = await handler.client.request("POST", path, json.dumps(body).encode())
    except Exception as exc:  # vLLM's app failed before it answered
        release()
        raise handler.engine_gone() or RuntimeServeError(f"vLLM failed: {exc!r}") from exc
    except BaseException:
        release()
        raise
    if response.status != 200:
        raw = await response.read()
        release()
        raise vllm_error(response.status, raw)
    if body.get("stream"):
        calls = StreamedCalls(tools) if tools else None
        return StreamingResponse(_events(response, release, calls), media_type="text/event-stream")
    try:
        raw = await response.read()
    finally:
        release()
    if (
        not tools and REASONING_MARK not in raw
    ):  # nothing of ours to change: vLLM's bytes as they are
        return Response(raw, media_type="application/json")
    answer = json.loads(raw)
    answer = answer_with_calls(answer, tools) if tools else answer
    return JSONResponse(_with_both_reasoning_keys(answer))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


async def _events(
    response: AsgiResponse, release: Callable[[], None], calls: StreamedCalls | None
) -> AsyncIterator[bytes]:
    """vLLM's SSE bytes as they come, one write per read; only events that name reasoning (or
    every event of a forced tool call) are parsed and rewritten. Closing the response stops
    vLLM's generation."""
    pending = b""
    try:
        async for data in response.iter_any():
            plain = calls is None and not pending and REASONING_MARK not in data
            if plain and data.endswith(b"\n\n"):
                yield data  # the common case: whole events, nothing to change
                continue
            pending += data
            complete, _, pending = pending.rpartition(b"\n\n")
            if complete:
                yield b"".join(_rewrite(event, calls) for event in complete.split(b"\n\n"))
        if pending:
            yield _rewrite(pending, calls)
    finally:
        response.close()  # mid-stream (the client left): vLLM sees a disconnect and aborts
        release()


def _rewrite(event: bytes, calls: StreamedCalls | None) -> bytes:
    """One SSE event, reasoning deltas given both names and forced calls rebuilt ("" drops it)."""
    if not event.startswith(b"data: {") or (calls is None and REASONING_MARK not in event):
        return event + b"\n\n"
    chunk = _with_both_reasoning_keys(json.loads(event[6:]))
    rewritten = calls.rewrite(chunk) if calls else chunk
    return b"" if rewritten is None else b"data: " + json.dumps(rewritten).encode() + b"\n\n"


def _with_both_reasoning_keys(body: dict[str, Any]) -> dict[str, Any]:
    for choice in body.get("choices") or ():
        for part in (choice.get("message"), choice.get("delta")):
            if isinstance(part, dict):
                thought = part.get("reasoning") or part.get("reasoning_content")
                if thought is not None:
                    part["reasoning"] = part["reasoning_content"] = thought
    return body
