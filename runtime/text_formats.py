"""Bodies and stream events of text generation: native (the seed's) and OpenAI's."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llm_runtime.handlers.base import TextStream
from llm_runtime.values import TextDelta, TextRequest, TextResult, TokenLogprob, Usage


def native_result(result: TextResult, request: TextRequest) -> dict[str, Any]:
    """The body POST /generate answers for a finished text generation."""
    out: dict[str, Any] = {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "usage": dataclasses.asdict(result.usage),
    }
    if result.reasoning:
        out["answer"] = result.text
        if request.reasoning.show_thinking:
            out["thinking"] = result.thinking
    return out


async def native_events(stream: TextStream, request: TextRequest) -> AsyncIterator[dict]:
    """`{"token"}` (or `{"type", "token"}` for reasoning) events, then `{"finished": true}`."""
    show_thinking = request.reasoning.show_thinking
    async for delta in stream:
        if not stream.reasoning:
            yield {"token": delta.text, "finished": False}
        elif delta.channel == "answer" or show_thinking:
            yield {"type": delta.channel, "token": delta.text, "finished": False}
    result = await stream.result()
    final: dict[str, Any] = {
        "finished": True,
        "finish_reason": result.finish_reason,
        "usage": dataclasses.asdict(result.usage),
    }
    if result.reasoning:
        final.update(
            thinking_tokens=result.usage.thinking_tokens, answer_tokens=result.usage.answer_tokens
        )
    yield final


def openai_usage(usage: Usage, reasoning: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.thinking_tokens}
    return out


def openai_finish_reason(result: TextResult) -> str:
    return result.finish_reason if result.finish_reason in ("length", "tool_calls") else "stop"


def chat_logprobs(entries: tuple[TokenLogprob, ...]) -> dict[str, Any]:
    """OpenAI chat `logprobs`: content[] with token, logprob, bytes and top_logprobs."""
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": list(e.bytes),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(b)} for t, lp, b in e.top
                ],
            }
            for e in entries
        ],
        "refusal": None,
    }


def completion_logprobs(entries: tuple[TokenLogprob, ...], offset: int) -> dict[str, Any]:
    """The legacy completions `logprobs`: parallel lists, top_logprobs as token->logprob."""
    offsets, position = [], offset
    for e in entries:
        offsets.append(position)
        position += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t: lp for t, lp, _ in e.top} for e in entries],
        "text_offset": offsets,
    }


def usage_of(results: list[TextResult]) -> Usage:
    """Usage of n choices of one prompt: the prompt counted once, every completion."""
    return Usage(
        prompt_tokens=results[0].usage.prompt_tokens,
        completion_tokens=sum(r.usage.completion_tokens for r in results),
        thinking_tokens=sum(r.usage.thinking_tokens for r in results),
        answer_tokens=sum(r.usage.answer_tokens for r in results),
    )


def tool_calls_body(result: TextResult) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in result.tool_calls
    ]


class ChatFormat:
    """OpenAI `chat.completion` bodies and `chat.completion.chunk` events for one request."""

    def __init__(self, model: str) -> None:
        self.model, self.id, self.created = model, f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def completion(
        self, results: TextResult | list[TextResult], request: TextRequest
    ) -> dict[str, Any]:
        """A `chat.completion` with one choice per result (n)."""
        results = results if isinstance(results, list) else [results]
        choices = [self._choice(i, r, request) for i, r in enumerate(results)]
        usage = openai_usage(usage_of(results), results[0].reasoning)
        return self._envelope("chat.completion", choices, usage)

    def _choice(self, index: int, result: TextResult, request: TextRequest) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.tool_calls:
            message.update(content=result.text or None, tool_calls=tool_calls_body(result))
        if result.reasoning and request.reasoning.show_thinking:
            message.update(reasoning_content=result.thinking, reasoning=result.thinking)
        logprobs = None if result.logprobs is None else chat_logprobs(result.logprobs)
        return {
            "index": index,
            "message": message,
            "finish_reason": openai_finish_reason(result),
            "logprobs": logprobs,
        }

    async def chunks(
        self, streams: TextStream | list[TextStream], request: TextRequest, include_usage: bool
    ) -> AsyncIterator[dict]:
        """SSE events: role, content/reasoning deltas and finish of each choice (its index), the
        optional usage of them all, `[DONE]`."""
        streams = streams if isinstance(streams, list) else [streams]
        usage_field = {"usage": None} if include_usage else {}
        for index in range(len(streams)):
            yield self._chunk(index, {"role": "assistant", "content": ""}, None, usage_field)
        results: list[TextResult] = []
        async for index, delta in merged(streams):
            if delta is None:
                results.append(result := await streams[index].result())
                yield self._chunk(index, {}, openai_finish_reason(result), usage_field)
            elif delta.tool_call is not None:
                body: dict[str, Any] = {"tool_calls": [_tool_call_delta(delta)]}
                yield self._chunk(index, body, None, usage_field)
            elif delta.channel == "answer":
                logprobs = chat_logprobs(delta.logprobs) if request.logprobs is not None else None
                yield self._chunk(index, {"content": delta.text}, None, usage_field, logprobs)
            elif request.reasoning.show_thinking:
                body = {"reasoning_content": delta.text, "reasoning": delta.text}
                yield self._chunk(index, body, None, usage_field)
        if include_usage:
            usage = openai_usage(usage_of(results), results[0].reasoning)
            yield sse_event(self._envelope("chat.completion.chunk", [], usage))
        yield {"data": "[DONE]"}

    def _chunk(self, index: int, delta: dict, finish: str | None, extra: dict, logprobs=None):
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
        return sse_event({**self._envelope("chat.completion.chunk", [choice]), **extra})

    def _envelope(self, kind: str, choices: list, usage: dict | None = None) -> dict:
        body = {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return body


class CompletionFormat:
    """OpenAI `text_completion` bodies and stream events."""

    def __init__(self, model: str) -> None:
        self.model, self.id, self.created = model, f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def completion(self, results: list[list[TextResult]], prompts: list[str], echo: bool) -> dict:
        """A `text_completion`: for each prompt, its n choices (indexes run on)."""
        choices: list[dict] = []
        for prompt, group in zip(prompts, results, strict=True):
            for r in group:
                head = prompt if echo else ""
                logprobs = None
                if r.logprobs is not None:
                    logprobs = completion_logprobs(r.logprobs, len(head))
                choices.append(
                    {
                        "index": len(choices),
                        "text": head + r.text,
                        "finish_reason": openai_finish_reason(r),
                        "logprobs": logprobs,
                    }
                )
        usages = [usage_of(group) for group in results]
        usage = Usage(
            prompt_tokens=sum(u.prompt_tokens for u in usages),
            completion_tokens=sum(u.completion_tokens for u in usages),
        )
        return {**self._envelope(choices), "usage": openai_usage(usage, False)}

    async def chunks(
        self, streams: list[TextStream], include_usage: bool, logprobs: bool = False
    ) -> AsyncIterator[dict]:
        """Text pieces and the finish of each choice (its index), the optional usage, `[DONE]`."""
        results: list[TextResult] = []
        async for index, delta in merged(streams):
            if delta is None:
                results.append(result := await streams[index].result())
                finish = self._choice(index, "", openai_finish_reason(result))
                yield sse_event(self._envelope([finish]))
            elif delta.channel == "answer":
                choice = self._choice(index, delta.text, None)
                if logprobs:
                    choice["logprobs"] = completion_logprobs(delta.logprobs, 0)
                yield sse_event(self._envelope([choice]))
        if include_usage:
            usage = openai_usage(usage_of(results), False)
            yield sse_event({**self._envelope([]), "usage": usage})
        yield {"data": "[DONE]"}

    def _choice(self, index: int, text: str, finish: str | None) -> dict:
        return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}

    def _envelope(self, choices: list) -> dict:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def _tool_call_delta(delta: TextDelta) -> dict[str, Any]:
    """OpenAI's streamed tool call piece: index, then id/type/name once, arguments chunks."""
    chunk = delta.tool_call
    assert chunk is not None
    out: dict[str, Any] = {"index": chunk.index}
    function: dict[str, Any] = {"arguments": chunk.arguments}
    if chunk.id is not None:
        out.update(id=chunk.id, type="function")
    if chunk.name is not None:
        function = {"name": chunk.name, **function}
    out["function"] = function
    return out


async def merged(streams: list[TextStream]) -> AsyncIterator[tuple[int, TextDelta | None]]:
    """The deltas of several streams as they come, each with its stream's index; (index, None)
    once that stream has ended. A stream's error ends the whole iteration."""
    if len(streams) == 1:  # the common case, without a task per stream
        async for delta in streams[0]:
            yield 0, delta
        yield 0, None
        return
    queue: asyncio.Queue[tuple[int, TextDelta | Exception | None]] = asyncio.Queue()

    async def pump(index: int, stream: TextStream) -> None:
        try:
            async for delta in stream:
                queue.put_nowait((index, delta))
            queue.put_nowait((index, None))
        except Exception as exc:  # raised where the events are read
            queue.put_nowait((index, exc))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        for _ in range(len(streams)):
            while True:
                index, item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield index, item
                if item is None:
                    break
    finally:
        for task in tasks:
            task.cancel()


def sse_event(body: dict) -> dict:
    return {"data": json.dumps(body, ensure_ascii=False)}
