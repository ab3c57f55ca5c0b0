"""A TextStream for models whose `generate` runs whole on a worker thread (seq2seq, multimodal).

transformers' TextIteratorStreamer hands decoded text to the event loop; a StoppingCriteria
polls the cancel flag so a client that leaves stops the generation at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from llm_runtime.errors import Overloaded, RuntimeServeError, internal_error
from llm_runtime.handlers.base import TextStream
from llm_runtime.loading import translate_oom
from llm_runtime.values import FinishReason, SamplingParams, TextDelta, TextResult, Usage

_END = object()


class GenerationSlot:
    """One generation at a time per model; at most max_queue more waiting."""

    def __init__(self, max_queue: int) -> None:
        self.lock, self.max_queue, self.waiting = threading.Lock(), max_queue, 0
        self._count_lock = threading.Lock()

    def reserve(self) -> None:
        with self._count_lock:
            if self.waiting >= self.max_queue + 1:
                raise Overloaded(f"{self.waiting} generations are queued; retry shortly.")
            self.waiting += 1

    def release(self) -> None:
        with self._count_lock:
            self.waiting -= 1


def generate_kwargs(sampling: SamplingParams, max_tokens: int) -> dict[str, Any]:
    """transformers `generate` arguments for the request's sampling settings."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_tokens}
    if sampling.greedy:
        return {**kwargs, "do_sample": False}
    kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
    if sampling.top_k:
        kwargs["top_k"] = sampling.top_k
    if sampling.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = sampling.repetition_penalty
    return kwargs


class WorkerTextStream(TextStream):
    """A TextStream fed by a worker thread: text pieces, an error, then _END, through a queue
    on the event loop. Subclasses start the thread and set ``_result`` before ``_put(_END)``."""

    def _open_queue(self) -> None:
        """Call on the event loop, before the worker starts."""
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()
        self._result: TextResult | None = None

    @property
    def reasoning(self) -> bool:
        return False

    async def __aiter__(self) -> AsyncIterator[TextDelta]:
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)  # result() may wait too
                return
            if isinstance(item, BaseException):
                raise item
            yield item if isinstance(item, TextDelta) else TextDelta(item)

    async def result(self) -> TextResult:
        async for _ in self:
            pass
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        self._cancelled.set()

    def _put(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _end(self) -> None:
        """The stream is over: after ``_result`` is set."""
        self._put(_END)

    def _work_in(
        self, slot: GenerationSlot, body: Callable[[], None], finish: Callable[[], None]
    ) -> None:
        """The worker thread: ``body`` under the slot's lock, its error sent down the stream; the
        slot is freed and ``finish`` (which sets the result and ends the stream) runs always."""
        try:
            with slot.lock:
                body()
        except RuntimeServeError as exc:
            self._put(exc)
        except Exception as exc:
            self._put(internal_error(exc, "Generation failed"))
        finally:
            slot.release()
            finish()


class ThreadedTextStream(WorkerTextStream):
    """Runs `run(streamer, stopping_criteria)` on a thread and streams what it decodes."""

    def __init__(
        self,
        *,
        tokenizer,
        slot: GenerationSlot,
        run: Callable[[Any, Any], Any],
        prompt_tokens: int,
        stop: tuple[str, ...] = (),
        max_tokens: int,
        skip_prompt: bool = False,
    ) -> None:
        from transformers import TextIteratorStreamer

        self._open_queue()
        self._stop, self._text, self._tokens = stop, "", 0
        self._max_tokens, self._stop_hit = max_tokens, False
        self._prompt_tokens, self._started = prompt_tokens, time.perf_counter()
        self._first_token_s: float | None = None
        self._streamer = TextIteratorStreamer(
            tokenizer, skip_prompt=skip_prompt, skip_special_tokens=True
        )
        self._counter = _TokenCounter(self)
        slot.reserve()
        threading.Thread(
            target=self._work_in,
            args=(slot, lambda: self._generate(run), self._finish),
            daemon=True,
        ).start()

    def _generate(self, run) -> None:
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        try:
            with translate_oom("generating"):
                run(self._streamer, [self._counter])
        finally:
            self._streamer.end()
            reader.join()

    def _read(self) -> None:
        for piece in self._streamer:
            if not piece or self._cancelled.is_set():
                continue
            piece = self._cut_at_stop(piece)
            if piece:
                self._text += piece
                self._put(piece)

    def _cut_at_stop(self, piece: str) -> str:
        for stop in self._stop:
            joined = self._text + piece
            index = joined.find(stop, max(0, len(self._text) - len(stop)))
            if index >= 0:
                self._stop_hit = True
                self._cancelled.set()
                return joined[:index][len(self._text) :]
        return piece

    def _finish(self) -> None:
        self._result = TextResult(
            text=self._text,
            thinking="",
            finish_reason=self._finish_reason(),
            usage=Usage(self._prompt_tokens, self._tokens, answer_tokens=self._tokens),
            time_to_first_token_s=self._first_token_s,
        )
        self._put(_END)

    def _finish_reason(self) -> FinishReason:
        if self._stop_hit:
            return "stop"
        if self._cancelled.is_set():
            return "cancelled"
        return "length" if self._tokens >= self._max_tokens else "stop"


class _TokenCounter:
    """A StoppingCriteria that counts generated tokens and stops on cancel."""

    def __init__(self, stream: ThreadedTextStream) -> None:
        self.stream = stream

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        stream = self.stream
        stream._tokens += 1  # called once per generated token
        if stream._first_token_s is None:
            stream._first_token_s = time.perf_counter() - stream._started
        done = stream._cancelled.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)


def generate_stream(
    *,
    model,
    tokenizer,
    slot: GenerationSlot,
    inputs: dict,
    request,
    default_max_tokens: int,
    skip_prompt: bool = False,
) -> ThreadedTextStream:
    """A ThreadedTextStream running ``model.generate(**inputs)`` with the request's sampling."""
    max_tokens = request.sampling.max_tokens or default_max_tokens
    options = generate_kwargs(request.sampling, max_tokens)

    def run(streamer, criteria) -> None:
        import torch

        if request.sampling.seed is not None:
            torch.manual_seed(request.sampling.seed)
        with torch.inference_mode():
            model.generate(**inputs, streamer=streamer, stopping_criteria=criteria, **options)

    return ThreadedTextStream(
        tokenizer=tokenizer, slot=slot, run=run, prompt_tokens=int(inputs["input_ids"].shape[1]),
        stop=request.stop, max_tokens=max_tokens, skip_prompt=skip_prompt,
    )  # fmt: skip
