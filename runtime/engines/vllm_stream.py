"""One generation on vLLM, as the `TextStream` every native route reads (vLLM's SSE, read in
process)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from llm_runtime.engines.asgi_client import AsgiClient
from llm_runtime.errors import InvalidRequest, RuntimeServeError
from llm_runtime.handlers.base import TextStream
from llm_runtime.values import Channel, TextDelta, TextResult, Usage

REASONING_KEYS = ("reasoning", "reasoning_content")


class VllmStream(TextStream):
    """Streams one chat or completion request from vLLM into deltas and a final result."""

    def __init__(
        self, client: AsgiClient, path: str, body: dict[str, Any], *, reasoning: bool,
        release: Callable[[], None], gone: Callable[[], RuntimeServeError | None] = lambda: None,
    ) -> None:  # fmt: skip
        self._reasoning, self._release, self._gone = reasoning, release, gone
        self._queue: asyncio.Queue[TextDelta | None] = asyncio.Queue()
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._counts = {"thinking": 0, "answer": 0}
        self._finish, self._usage = "stop", dict[str, Any]()
        self._first: float | None = None
        self._started = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._run(client, path, body))
        self._task.add_done_callback(lambda _: release())

    @property
    def reasoning(self) -> bool:
        return self._reasoning

    async def __aiter__(self) -> AsyncIterator[TextDelta]:
        while (delta := await self._queue.get()) is not None:
            yield delta
        await self._task  # raises the generation's error, if any

    async def result(self) -> TextResult:
        await asyncio.shield(self._task)
        completion = self._usage.get("completion_tokens", sum(self._counts.values()))
        thinking = min(self._counts["thinking"], completion) if self._reasoning else 0
        return TextResult(
            text="".join(self._text),
            thinking="".join(self._thinking),
            finish_reason="length" if self._finish == "length" else "stop",
            usage=Usage(
                prompt_tokens=self._usage.get("prompt_tokens", 0),
                completion_tokens=completion,
                thinking_tokens=thinking,
                answer_tokens=completion - thinking,
            ),
            reasoning=self._reasoning,
            time_to_first_token_s=None if self._first is None else self._first - self._started,
        )

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()  # leaving the response makes vLLM abort the request

    async def _run(self, client: AsgiClient, path: str, body: dict[str, Any]) -> None:
        try:
            response = await client.request("POST", path, json.dumps(body).encode())
        except Exception as exc:  # vLLM's app failed before it answered
            self._queue.put_nowait(None)
            raise vllm_failure(exc, self._gone) from exc
        try:
            async with response:  # leaving it (cancel() too) makes vLLM abort the request
                if response.status != 200:
                    raise vllm_error(response.status, await response.read())
                async for raw in response.lines():  # one SSE line at a time
                    line = raw.rstrip(b"\r\n")
                    if line.startswith(b"data: {"):
                        self._chunk(json.loads(line[6:]))
            if (gone := self._gone()) is not None:
                raise gone
        finally:
            self._queue.put_nowait(None)

    def _chunk(self, chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("error"), dict):  # vLLM failed mid-stream: never a silent ""
            status = chunk["error"].get("code")
            status = status if isinstance(status, int) else 500
            raise self._gone() or vllm_error(status, json.dumps(chunk).encode())
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {"content": choice.get("text")}
            thought = next((delta[k] for k in REASONING_KEYS if delta.get(k)), None)
            if thought:
                self._emit(thought, "thinking", self._thinking)
            if delta.get("content"):
                self._emit(delta["content"], "answer", self._text)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def _emit(self, text: str, channel: Channel, sink: list[str]) -> None:
        if self._first is None:
            self._first = time.perf_counter()
        sink.append(text)
        self._counts[channel] += 1
        self._queue.put_nowait(TextDelta(text, channel if self._reasoning else "answer"))


def vllm_error(status: int, raw: bytes) -> RuntimeServeError:
    """vLLM's error answer as ours: its 4xx message becomes a 400, anything else a 500."""
    try:
        body = json.loads(raw)
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace")[:500]
    if 400 <= status < 500:
        code = "context_length_exceeded" if "context length" in (message or "").lower() else None
        return InvalidRequest(message or "vLLM refused the request.", code=code)
    return RuntimeServeError(f"vLLM failed: {message}")


def vllm_failure(
    exc: BaseException, gone: Callable[[], RuntimeServeError | None]
) -> RuntimeServeError:
    """vLLM's app raised before answering: a 503 when its engine died, else a 500 naming it."""
    return gone() or RuntimeServeError(f"vLLM failed: {exc!r}")
