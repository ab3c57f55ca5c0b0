"""Dynamic batching: one worker thread runs `model.generate` over every waiting request.

Requests queue up (bounded: a full queue raises Overloaded, answered 429); whenever the model
is free the worker takes up to `max_batch_size` of them, left-pads their prompts into one
batch and generates. Requests that arrive while a batch runs form the next batch; the worker
waits a few milliseconds for the clients of the last batch to come back, never for a lone one. Rows are
independent: each has its own sampling, stops and budget (see decoding.py), and a cancelled
row stops at the next step without disturbing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from llm_runtime.decoding import RowSampler, RowState, RowStopper
from llm_runtime.errors import InvalidRequest, Overloaded, RuntimeServeError, internal_error
from llm_runtime.handlers.base import TextStream
from llm_runtime.loading import translate_oom
from llm_runtime.metrics import BATCH_BUCKETS, Metrics
from llm_runtime.values import TextDelta, TextResult

log = logging.getLogger("llm_runtime")
RECENT_BATCH_S = 1.0


class QueuedTextStream(TextStream):
    """The asyncio side of one queued request; the worker thread feeds it.

    The worker only appends to a buffer; `wake_streams` then wakes the event loop once per
    decoding step for the whole batch (one wake-up per token per request costs the worker
    the GIL far too often).
    """

    def __init__(self, engine: BatchEngine, row: RowState) -> None:
        self.engine, self.row = engine, row
        self.loop = asyncio.get_running_loop()
        self.buffer: deque[TextDelta | TextResult | BaseException] = deque()
        self.wake_scheduled = False
        self.deltas_wanted = True  # False once the consumer only awaits the result
        self._ready = asyncio.Event()
        self._result: TextResult | None = None
        self._error: BaseException | None = None

    @property
    def reasoning(self) -> bool:
        return self.row.think is not None

    def put(self, item: TextDelta | TextResult | BaseException) -> None:
        """Worker side: buffer an item (the next wake_streams delivers it)."""
        if self.deltas_wanted or not isinstance(item, TextDelta):
            self.buffer.append(item)

    def wake(self) -> None:
        """Event-loop side: let the consumer drain the buffer."""
        self.wake_scheduled = False
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[TextDelta]:
        while self._result is None and self._error is None:
            self._ready.clear()
            while self.buffer and self._result is None and self._error is None:
                item = self.buffer.popleft()
                if isinstance(item, TextDelta):
                    yield item
                elif isinstance(item, TextResult):
                    self._result = item
                else:
                    self._error = item
            if self._result is None and self._error is None:
                await self._ready.wait()
        if self._error is not None:
            raise self._error

    async def result(self) -> TextResult:
        self.deltas_wanted = False  # waking this consumer for every token would be waste
        self.row.streaming = False
        async for _ in self:
            pass
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        if self._result is None:
            self.engine.cancel(self)


def wake_streams(streams: list[QueuedTextStream]) -> None:
    """Thread-safe: one event-loop callback wakes every stream with buffered items."""
    due = [s for s in streams if s.buffer and not s.wake_scheduled]
    if not due:
        return
    for stream in due:
        stream.wake_scheduled = True
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
        due[0].loop.call_soon_threadsafe(_wake_all, due)


def _wake_all(streams: list[QueuedTextStream]) -> None:
    for stream in streams:
        stream.wake()


@dataclass
class _Job:
    stream: QueuedTextStream
    enqueued_at: float = field(default_factory=time.perf_counter)

    @property
    def row(self) -> RowState:
        return self.stream.row


class BatchEngine:
    """Owns the model's generate loop; everything touching the model runs on its thread."""

    def __init__(
        self,
        *,
        model,
        pad_id: int,
        metrics: Metrics,
        max_batch_size: int = 16,
        max_queue: int = 64,
        batch_window_s: float = 0.02,
    ) -> None:
        self.model, self.pad_id, self.metrics = model, pad_id, metrics
        self.max_batch_size, self.max_queue, self.batch_window_s = (
            max_batch_size,
            max_queue,
            batch_window_s,
        )
        self._waiting: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._last_batch_size, self._last_batch_end = 1, 0.0
        self._thread = threading.Thread(target=self._work, name="llm-batch-worker", daemon=True)
        self._thread.start()

    def submit(self, row: RowState) -> QueuedTextStream:
        """Queue row and return its stream; raises Overloaded when the queue is full."""
        return self.submit_all([row])[0]

    def submit_all(self, rows: list[RowState]) -> list[QueuedTextStream]:
        """Queue every row or none: InvalidRequest when they could never fit, else Overloaded
        when the queue has no room for all of them now."""
        streams = [QueuedTextStream(self, row) for row in rows]
        for stream in streams:
            stream.row.emit = stream.put
        with self._cond:
            self._check_room(len(rows))
            self._waiting.extend(_Job(stream) for stream in streams)
            self._set_waiting()
            self._cond.notify()
        return streams

    def check_room(self, count: int) -> None:
        """Raise as submit_all would for count rows, without queueing anything."""
        with self._cond:
            self._check_room(count)

    def _check_room(self, count: int) -> None:
        if count > self.max_queue:
            raise InvalidRequest(
                f"This request holds {count} prompts but the server queues at most "
                f"{self.max_queue} (--max-queue); send at most {self.max_queue} per request.",
                code="too_many_prompts",
            )
        if len(self._waiting) + count > self.max_queue:
            self.metrics.inc("requests_rejected_total", help="Requests refused with 429")
            raise Overloaded(
                f"The server is busy: {len(self._waiting)} requests are already waiting "
                f"(--max-queue {self.max_queue}). Retry shortly."
            )

    def cancel(self, stream: QueuedTextStream) -> None:
        """Stop stream's row: drop it from the queue, or end it at the next decoding step."""
        stream.row.cancelled.set()
        with self._cond:
            job = next((j for j in self._waiting if j.stream is stream), None)
            if job is not None:
                self._waiting.remove(job)
                self._set_waiting()
        if job is not None:
            job.row.finish("cancelled")
            self._deliver(job)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _work(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            self._run(jobs)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            self._wait_for_stragglers()
            if self._closed:
                return None
            count = min(self.max_batch_size, len(self._waiting))
            jobs = [self._waiting.popleft() for _ in range(count)]
            self._set_waiting()
            return jobs

    def _wait_for_stragglers(self) -> None:
        """Give clients of the last batch a short window to send their next request.

        Clients served together tend to come back together; waiting a few milliseconds for
        them keeps the batch full. A lone client (last batch of one) never waits.
        """
        recent = time.perf_counter() - self._last_batch_end < RECENT_BATCH_S
        target = min(self.max_batch_size, self._last_batch_size if recent else 1)
        deadline = time.perf_counter() + self.batch_window_s
        while len(self._waiting) < target and not self._closed:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._cond.wait(remaining)

    def _run(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        self.metrics.observe("batch_size", len(jobs), BATCH_BUCKETS, "Requests per generate batch")
        self.metrics.set("num_requests_running", len(jobs), "Requests in the running batch")
        try:
            self._generate([job.row for job in jobs], [job.stream for job in jobs])
        except RuntimeServeError as exc:
            self._fail(jobs, exc)
        except Exception as exc:  # the worker must survive any model error
            self._fail(jobs, internal_error(exc, "Generation failed"))
        else:
            for job in jobs:
                self._deliver(job)
            self._record_speed(jobs, time.perf_counter() - started)
        finally:
            self.metrics.set("num_requests_running", 0, "Requests in the running batch")
            self._last_batch_size, self._last_batch_end = len(jobs), time.perf_counter()

    def _generate(self, rows: list[RowState], streams: list[QueuedTextStream]) -> None:
        width = max(len(row.prompt_ids) for row in rows)
        pads = [width - len(row.prompt_ids) for row in rows]
        device = self.model.device
        input_ids = torch.tensor(
            [[self.pad_id] * pad + row.prompt_ids for pad, row in zip(pads, rows, strict=True)],
            device=device,
        )
        mask = torch.tensor(
            [[0] * pad + [1] * len(row.prompt_ids) for pad, row in zip(pads, rows, strict=True)],
            device=device,
        )
        config = GenerationConfig(
            max_new_tokens=max(row.budget for row in rows),
            do_sample=False,
            num_beams=1,
            pad_token_id=self.pad_id,
        )
        with torch.inference_mode(), translate_oom("generating"):
            self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([RowSampler(rows, pads)]),
                stopping_criteria=StoppingCriteriaList(
                    [RowStopper(rows, on_step=lambda: wake_streams(streams))]
                ),
            )

    def _deliver(self, job: _Job) -> None:
        row = job.row
        if not row.finished:
            row.finish("length")
        result = row.result()
        job.stream.put(result)
        wake_streams([job.stream])
        self._record_request(job, result)

    def _fail(self, jobs: list[_Job], exc: RuntimeServeError) -> None:
        for job in jobs:
            job.stream.put(exc)
            wake_streams([job.stream])
            self.metrics.inc("request_failure_total", help="Generations that raised an error")

    def _record_request(self, job: _Job, result: TextResult) -> None:
        m = self.metrics
        m.inc(
            "request_success_total", help="Finished requests", finished_reason=result.finish_reason
        )
        m.inc("prompt_tokens_total", result.usage.prompt_tokens, "Prefill tokens processed")
        m.inc("generation_tokens_total", result.usage.completion_tokens, "Tokens generated")
        m.observe("e2e_request_latency_seconds", time.perf_counter() - job.enqueued_at)
        if result.time_to_first_token_s is not None:
            m.observe("time_to_first_token_seconds", result.time_to_first_token_s)

    def _record_speed(self, jobs: list[_Job], seconds: float) -> None:
        tokens = sum(job.row.generated for job in jobs)
        if seconds > 0 and tokens:
            self.metrics.set("generation_tokens_per_second", tokens / seconds, "Last batch speed")

    def _set_waiting(self) -> None:
        self.metrics.set("num_requests_waiting", len(self._waiting), "Requests in the queue")
