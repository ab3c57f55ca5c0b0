"""OpenAI-compatible endpoints: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from sse_starlette.sse import EventSourceResponse

from llm_runtime.admission import embedding_inputs, start_streams
from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.base import Embedding, TextGeneration, TextStream
from llm_runtime.schemas import ChatCompletionBody, CompletionBody, EmbeddingsBody
from llm_runtime.serving import check_api_key, host_of, result_unless_disconnected
from llm_runtime.sse import event_stream
from llm_runtime.text_formats import ChatFormat, CompletionFormat
from llm_runtime.values import TextRequest, TextResult

router = APIRouter(prefix="/v1", dependencies=[Depends(check_api_key)])


@router.get("/models")
async def list_models(request: Request) -> dict:
    host = host_of(request)
    host.require()
    model = {
        "id": host.model_id,
        "object": "model",
        "created": int(host.started_at),
        "owned_by": "llm-installer",
    }
    return {"object": "list", "data": [model]}


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatCompletionBody):
    host = host_of(request)
    handler = host.require_capability(TextGeneration, "POST /v1/chat/completions")
    refuse_unsupported(handler, body.model_dump(by_alias=True))
    text_request = body.to_text_request()
    chat = ChatFormat(host.model_id)
    if body.stream:  # n > 1: the choices stream side by side, each with its index
        streams = await start_streams(handler, choice_requests(text_request, body.n))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(streams, chat.chunks(streams, text_request, include_usage))
    results = await _choices(handler, choice_requests(text_request, body.n), request)
    return chat.completion(results, text_request)


@router.post("/completions")
async def completions(request: Request, body: CompletionBody):
    host = host_of(request)
    handler = host.require_capability(TextGeneration, "POST /v1/completions")
    refuse_unsupported(handler, body.model_dump(by_alias=True))
    text_requests = body.to_text_requests()
    fmt = CompletionFormat(host.model_id)
    if body.stream:
        if len(text_requests) > 1:
            raise InvalidRequest("Streaming takes a single prompt.", code="invalid_prompt")
        streams = await start_streams(handler, choice_requests(text_requests[0], body.n))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(streams, fmt.chunks(streams, include_usage, body.logprobs is not None))
    every = [c for r in text_requests for c in choice_requests(r, body.n)]
    results = await _choices(handler, every, request)  # batched together
    groups = [results[i : i + body.n] for i in range(0, len(results), body.n)]
    return fmt.completion(groups, body.prompts(), body.echo)


def refuse_unsupported(handler: Any, body: dict[str, Any]) -> None:
    """400 when the request uses an OpenAI feature this model's engine does not implement."""
    features: frozenset[str] = getattr(handler, "openai_features", frozenset())
    for feature in requested_features(body):
        if feature not in features:
            raise InvalidRequest(
                f"'{feature}' is not supported for {handler.family} models (only for "
                "text-generation LLMs). Remove it from the request.",
                code="unsupported_parameter",
            )


def requested_features(body: dict[str, Any]) -> list[str]:
    """The optional OpenAI features a raw request body asks for."""
    wanted = []
    if body.get("tools") and body.get("tool_choice") != "none":
        wanted.append("tools")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        wanted.append("response_format")
    if body.get("logprobs") not in (None, False):
        wanted.append("logprobs")
    if isinstance(body.get("n"), int) and body["n"] > 1:
        wanted.append("n")
    return wanted


def choice_requests(request: TextRequest, n: int) -> list[TextRequest]:
    """n copies of request; a given seed becomes seed, seed+1, ... so the choices differ."""
    seed = request.sampling.seed
    if n == 1:
        return [request]
    return [
        dataclasses.replace(
            request,
            sampling=dataclasses.replace(request.sampling, seed=None if seed is None else seed + i),
        )
        for i in range(n)
    ]


async def _choices(handler: Any, requests: list[TextRequest], request: Request) -> list[TextResult]:
    """Start every request (queued together, or none) and wait for all; cancel the rest on error."""
    streams = await start_streams(handler, requests)
    try:
        return list(
            await asyncio.gather(*(result_unless_disconnected(s, request) for s in streams))
        )
    finally:
        for stream in streams:
            stream.cancel()


@router.post("/embeddings")
async def embeddings(request: Request, body: EmbeddingsBody) -> dict:
    host = host_of(request)
    handler = host.require_capability(Embedding, "POST /v1/embeddings")
    inputs = embedding_inputs(handler, body.inputs())
    result = await handler.embed(inputs=inputs, normalize=body.normalize)
    vectors = [_shorten(v, body.dimensions, body.normalize) for v in result.vectors]
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return {"object": "list", "data": data, "model": host.model_id, "usage": usage}


def _shorten(vector: list[float], dimensions: int | None, normalize: bool) -> np.ndarray:
    """Matryoshka-style truncation to `dimensions`, renormalized when vectors are normalized."""
    array = np.asarray(vector, dtype=np.float32)
    if dimensions is None or dimensions >= array.size:
        return array
    array = array[:dimensions]
    norm = float(np.linalg.norm(array))
    return array / norm if normalize and norm > 0 else array


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


def _sse(streams: list[TextStream], events: AsyncIterator[dict]) -> EventSourceResponse:
    def cancel() -> None:
        for stream in streams:
            stream.cancel()

    return event_stream(events, cancel)
