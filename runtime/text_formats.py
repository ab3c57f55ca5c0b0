"""Bodies and stream events of text generation: native (the seed's) and OpenAI's."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llm_runtime.handlers.base import TextStream
from llm_runtime.values import TextRequest, TextResult, Usage


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
    return "length" if result.finish_reason == "length" else "stop"


class ChatFormat:
    """OpenAI `chat.completion` bodies and `chat.completion.chunk` events for one request."""

    def __init__(self, model: str) -> None:
        self.model, self.id, self.created = model, f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def completion(self, result: TextResult, request: TextRequest) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.reasoning and request.reasoning.show_thinking:
            message.update(reasoning_content=result.thinking, reasoning=result.thinking)
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": openai_finish_reason(result),
            "logprobs": None,
        }
        return self._envelope(
            "chat.completion", [choice], openai_usage(result.usage, result.reasoning)
        )

    async def chunks(
        self, stream: TextStream, request: TextRequest, include_usage: bool
    ) -> AsyncIterator[dict]:
        """SSE events: role, content/reasoning deltas, finish, optional usage, `[DONE]`."""
        usage_field = {"usage": None} if include_usage else {}
        yield self._chunk({"role": "assistant", "content": ""}, None, usage_field)
        async for delta in stream:
            if delta.channel == "answer":
                yield self._chunk({"content": delta.text}, None, usage_field)
            elif request.reasoning.show_thinking:
                body = {"reasoning_content": delta.text, "reasoning": delta.text}
                yield self._chunk(body, None, usage_field)
        result = await stream.result()
        yield self._chunk({}, openai_finish_reason(result), usage_field)
        if include_usage:
            usage = openai_usage(result.usage, result.reasoning)
            yield sse_event(self._envelope("chat.completion.chunk", [], usage))
        yield {"data": "[DONE]"}

    def _chunk(self, delta: dict, finish: str | None, extra: dict) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
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

    def completion(self, results: list[TextResult], prompts: list[str], echo: bool) -> dict:
        choices = [
            {
                "index": i,
                "text": (prompts[i] if echo else "") + r.text,
                "finish_reason": openai_finish_reason(r),
                "logprobs": None,
            }
            for i, r in enumerate(results)
        ]
        usage = Usage(
            prompt_tokens=sum(r.usage.prompt_tokens for r in results),
            completion_tokens=sum(r.usage.completion_tokens for r in results),
        )
        return {**self._envelope(choices), "usage": openai_usage(usage, False)}

    async def chunks(self, stream: TextStream, include_usage: bool) -> AsyncIterator[dict]:
        async for delta in stream:
            if delta.channel == "answer":
                yield sse_event(self._envelope([self._choice(delta.text, None)]))
        result = await stream.result()
        yield sse_event(self._envelope([self._choice("", openai_finish_reason(result))]))
        if include_usage:
            yield sse_event({**self._envelope([]), "usage": openai_usage(result.usage, False)})
        yield {"data": "[DONE]"}

    def _choice(self, text: str, finish: str | None) -> dict:
        return {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}

    def _envelope(self, choices: list) -> dict:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def sse_event(body: dict) -> dict:
    return {"data": json.dumps(body, ensure_ascii=False)}
