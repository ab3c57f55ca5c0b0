"""OpenAI routes on the vLLM engine: forwarded to vLLM nearly as they are.

What changes on the way: our API key and admission (429) come first, ``model`` names what
start.sh serves (the base model or the LoRA adapter in lora/), vLLM's errors take our error shape,
and reasoning deltas carry both ``reasoning_content`` and ``reasoning``, as on the other engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from llm_runtime.engines.vllm_handler import VllmTextHandler
from llm_runtime.engines.vllm_stream import vllm_error, vllm_failure
from llm_runtime.engines.vllm_tools import (
    StreamedCalls,
    answer_with_calls,
    constrained,
    forced_tools,
)
from llm_runtime.errors import InvalidRequest, error_response
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
    body["model"] = handler.served_name
    raw_body = json.dumps(body).encode()
    if body.get("stream"):
        calls = StreamedCalls(tools) if tools else None
        return Passthrough(handler, path, raw_body, release, calls)
    try:
        response = await handler.client.request("POST", path, raw_body)
        raw = await response.read()
    except Exception as exc:  # vLLM's app failed before it answered
        raise vllm_failure(exc, handler.engine_gone) from exc
    finally:
        release()
    if response.status != 200:
        raise vllm_error(response.status, raw)
    if (
        not tools and REASONING_MARK not in raw
    ):  # nothing of ours to change: vLLM's bytes as they are
        return Response(raw, media_type="application/json")
    answer = json.loads(raw)
    answer = answer_with_calls(answer, tools) if tools else answer
    return JSONResponse(_with_both_reasoning_keys(answer))


class Passthrough(Response):
    """A streamed answer: vLLM's app runs on this request's own task and writes through our
    connection (no queue or second task per token); our client's leaving is vLLM's disconnect.
    Events that name reasoning (or every event of a forced tool call) are rewritten on the way;
    an error status becomes our error answer."""

    def __init__(
        self, handler: VllmTextHandler, path: str, body: bytes, release: Callable[[], None],
        calls: StreamedCalls | None,
    ) -> None:  # fmt: skip
        super().__init__(media_type="text/event-stream")
        self.handler, self.path, self.raw_body = handler, path, body
        self.release, self.calls = release, calls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        failed: dict[str, Any] = {}  # a non-200 start and its body, or the app's error
        events, started = _Events(self.calls), False

        async def through(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and message["status"] != 200:
                failed.update(status=message["status"], body=b"")
            elif failed:
                failed["body"] += message.get("body", b"")
            elif message["type"] == "http.response.body":
                more = message.get("more_body", False)
                out = events.feed(message.get("body", b""), more)
                if out is not None:
                    await send({"type": "http.response.body", "body": out, "more_body": more})
            else:
                started = True
                await send(message)

        try:
            await self.handler.client.call("POST", self.path, self.raw_body, receive, through)
        except Exception as exc:
            if started:
                raise  # mid-stream: the connection is dropped
            failed["error"] = vllm_failure(exc, self.handler.engine_gone)
        finally:
            self.release()
        if "status" in failed:
            failed["error"] = vllm_error(failed["status"], failed["body"])
        if "error" in failed:
            await error_response(failed["error"])(scope, receive, send)


class _Events:
    """vLLM's SSE bytes as they come, one write per read; only events that name reasoning (or
    every event of a forced tool call) are parsed and rewritten."""

    def __init__(self, calls: StreamedCalls | None) -> None:
        self.calls, self.pending = calls, b""

    def feed(self, data: bytes, more: bool) -> bytes | None:
        """What to write for ``data`` (None: nothing yet)."""
        plain = self.calls is None and not self.pending and REASONING_MARK not in data
        if plain and (data.endswith(b"\n\n") or not data):
            return data  # the common case: whole events, nothing to change
        self.pending += data
        complete, _, self.pending = self.pending.rpartition(b"\n\n")
        out = b"".join(_rewrite(event, self.calls) for event in complete.split(b"\n\n") if event)
        if not more and self.pending:
            out, self.pending = out + _rewrite(self.pending, self.calls), b""
        return out if out or not more else None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


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
