"""Per-row decoding state for batched `model.generate`.

`generate` runs one batch; each row is one request with its own sampling settings, stop
strings, token budget and reasoning phase. `RowSampler` (a LogitsProcessor) picks each row's
next token with that row's settings and seed, then leaves only that token possible, so
`generate` runs greedily over the batch. `RowStopper` (a StoppingCriteria) hands each new token
to its row, which detokenizes, splits thinking from answer, applies stop strings and decides
when it is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor, StoppingCriteria

from llm_runtime.reasoning import ReasoningTokens
from llm_runtime.values import (
    Channel,
    FinishReason,
    OutputSpec,
    SamplingParams,
    TextDelta,
    TextResult,
    TokenLogprob,
    Usage,
)

if TYPE_CHECKING:
    from llm_runtime.structured import JsonConstraint


class RowState:
    """One request inside a running batch: its tokens, texts, budget and finish reason."""

    def __init__(
        self,
        *,
        tokenizer,
        prompt_ids: list[int],
        sampling: SamplingParams,
        stop: tuple[str, ...],
        eos_ids: frozenset[int],
        emit: Callable[[TextDelta], None],
        think: ReasoningTokens | None = None,
        banned_ids: frozenset[int] = frozenset(),
        max_thinking_tokens: int | None = None,
        max_answer_tokens: int | None = None,
        constraint: JsonConstraint | None = None,
        top_logprobs: int | None = None,
        token_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self.tokenizer, self.prompt_ids, self.sampling = tokenizer, prompt_ids, sampling
        self.stop, self.eos_ids, self.emit, self.think = stop, eos_ids, emit, think
        self.banned_ids = sorted(banned_ids)
        self.max_thinking_tokens, self.max_answer_tokens = max_thinking_tokens, max_answer_tokens
        self.channel: Channel = (
            "thinking" if think and think.starts_thinking(prompt_ids) else "answer"
        )
        self.ids: dict[Channel, list[int]] = {"thinking": [], "answer": []}
        self.sent: dict[Channel, int] = {"thinking": 0, "answer": 0}
        self.generated = 0
        self.tokens: list[int] = []  # every generated token, in order
        self.finish_reason: FinishReason | None = None
        self.cancelled = threading.Event()
        self.created_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.final_answer: str | None = None
        self.streaming = True  # False once the consumer only awaits the result: skip deltas
        self.generator = _generator(sampling.seed)
        self.constraint, self.top_logprobs = constraint, top_logprobs
        self.token_bytes = token_bytes or (lambda t: self.tokenizer.decode([t]).encode())
        self.logprobs: list[TokenLogprob] = []  # the answer's tokens, when asked for
        self.output: OutputSpec | None = (
            None  # the OutputSpec: tool calls wrap the stream (set by the handler)
        )
        self.logprobs_sent = 0
        self._pending_logprob: TokenLogprob | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def plain_greedy(self) -> bool:
        """True when the batch-wide argmax is this row's choice (nothing row-specific applies)."""
        return (
            self.sampling.greedy
            and self.sampling.repetition_penalty == 1.0
            and not self.banned_ids
            and self.forced_token() is None
            and self.constraint is None
            and self.top_logprobs is None
        )

    def history(self) -> torch.Tensor:
        """Prompt and generated ids, for the repetition penalty."""
        return torch.tensor(self.prompt_ids + self.tokens)

    def forced_token(self) -> int | None:
        """`</think>` once the thinking budget is spent, else None."""
        budget = self.max_thinking_tokens
        if self.think and self.channel == "thinking" and budget is not None:
            return self.think.end_id if len(self.ids["thinking"]) >= budget else None
        return None

    def push(self, token: int) -> None:
        """Take the row's next generated token and emit any text it completes."""
        if self.finished:
            return
        if self.cancelled.is_set():
            self.finish("cancelled")
            return
        self.generated += 1
        self.tokens.append(token)
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if token in self.eos_ids:
            self.finish("stop")
            return
        if not self._switch_channel(token):
            self.ids[self.channel].append(token)
            self._follow(token)
            self._emit_new_text()
        if not self.finished and self._budget_spent():
            self.finish("length")

    def result(self) -> TextResult:
        """The row's texts, finish reason and token counts."""
        thinking_count = len(self.ids["thinking"])
        return TextResult(
            text=self.final_answer if self.final_answer is not None else self._text("answer"),
            thinking=self._text("thinking"),
            finish_reason=self.finish_reason or "stop",
            usage=Usage(
                prompt_tokens=len(self.prompt_ids),
                completion_tokens=self.generated,
                thinking_tokens=thinking_count,
                answer_tokens=len(self.ids["answer"]),
            ),
            reasoning=self.think is not None,
            time_to_first_token_s=(
                self.first_token_at - self.created_at if self.first_token_at else None
            ),
            logprobs=tuple(self.logprobs) if self.top_logprobs is not None else None,
        )

    def note_logprobs(self, logits: torch.Tensor, token: int) -> None:
        """Remember token's log-probability (and the top alternatives) under raw logits."""
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        top = torch.topk(logprobs, self.top_logprobs) if self.top_logprobs else None
        alternatives = (
            tuple(
                self._logprob(int(i), float(v))
                for v, i in zip(top.values, top.indices, strict=True)
            )
            if top is not None
            else ()
        )
        chosen = self._logprob(token, float(logprobs[token]))
        self._pending_logprob = TokenLogprob(*chosen, top=alternatives)

    def _logprob(self, token: int, value: float) -> tuple[str, float, tuple[int, ...]]:
        text = self.tokenizer.decode([token])
        return text, max(value, -9999.0), tuple(self.token_bytes(token))

    def _follow(self, token: int) -> None:
        """An answer token: record its logprobs and advance the grammar (done once complete)."""
        pending, self._pending_logprob = self._pending_logprob, None
        if self.channel != "answer":
            return
        if pending is not None:
            self.logprobs.append(pending)
        if self.constraint is not None:
            self.constraint.advance(token)
            if self.constraint.complete:
                self.finish("stop")

    def _switch_channel(self, token: int) -> bool:
        if self.think is None:
            return False
        if token == self.think.start_id and self.channel == "answer":
            self.channel = "thinking"
            return True
        if token == self.think.end_id and self.channel == "thinking":
            self._flush("thinking")
            self.channel = "answer"
            return True
        return False

    @property
    def budget(self) -> int:
        """max_tokens, which the handler resolves before it makes the row (None: nothing)."""
        return self.sampling.max_tokens or 0

    def _budget_spent(self) -> bool:
        if self.generated >= self.budget:
            return True
        limit = self.max_answer_tokens
        return limit is not None and len(self.ids["answer"]) >= limit

    def finish(self, reason: FinishReason) -> None:
        """End the row for reason and flush the text held back."""
        self.finish_reason = reason
        for channel in ("thinking", "answer"):
            self._flush(channel)

    def _text(self, channel: Channel) -> str:
        return self.tokenizer.decode(self.ids[channel], skip_special_tokens=True)

    def _emit_new_text(self) -> None:
        if not self.streaming and not self.stop:
            return  # nobody reads deltas and no stop string to look for: decode at the end
        text = self._text(self.channel)
        if self.channel == "answer" and self.stop:
            hit = _first_stop(text, self.stop)
            if hit is not None:
                self.final_answer = text[:hit]
                self._send("answer", self.final_answer)
                self.finish_reason = "stop"
                return
            # Hold back a tail that might be the start of a stop string.
            text = text[: max(self.sent["answer"], len(text) - max(map(len, self.stop)) + 1)]
        self._send(self.channel, text)

    def _flush(self, channel: Channel) -> None:
        if (channel == "answer" and self.final_answer is not None) or not self.streaming:
            return
        self._send(channel, self._text(channel), final=True)

    def _send(self, channel: Channel, text: str, *, final: bool = False) -> None:
        if not final:
            text = text.rstrip("\ufffd")  # an incomplete UTF-8 sequence: wait for the rest
        new = text[self.sent[channel] :]
        if new:
            self.sent[channel] = len(text)
            logprobs: tuple[TokenLogprob, ...] = ()
            if channel == "answer":
                logprobs = tuple(self.logprobs[self.logprobs_sent :])
                self.logprobs_sent = len(self.logprobs)
            self.emit(TextDelta(text=new, channel=channel, logprobs=logprobs))


class RowSampler(LogitsProcessor):
    """Chooses each row's next token with its own settings; leaves only that token possible."""

    def __init__(self, rows: list[RowState], pad_lengths: list[int]) -> None:
        self.rows, self.pad_lengths = rows, pad_lengths

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        chosen = scores.argmax(dim=-1)
        for index, row in enumerate(self.rows):
            if not row.finished and not row.plain_greedy:
                history = input_ids[index, self.pad_lengths[index] :]
                chosen[index] = choose_token(row, scores[index], _returning(history))
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen.unsqueeze(1), 0.0)
        return out


class RowStopper(StoppingCriteria):
    """Feeds each row its new token; a row is done when its state says so."""

    def __init__(self, rows: list[RowState], on_step: Callable[[], None] = lambda: None) -> None:
        self.rows, self.on_step = rows, on_step

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, last, strict=True):
            row.push(token)
        self.on_step()
        return torch.tensor([row.finished for row in self.rows], device=input_ids.device)


def _returning(value: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: value


def choose_token(row: RowState, logits: torch.Tensor, history: Callable[[], torch.Tensor]) -> int:
    """Row's next token (logprobs noted when asked for)."""
    token = _pick_token(row, logits, history)
    if row.top_logprobs is not None and row.channel == "answer":
        row.note_logprobs(logits, token)
    return token


def _pick_token(row: RowState, logits: torch.Tensor, history: Callable[[], torch.Tensor]) -> int:
    """Forced, banned, constrained, penalized, greedy or sampled."""
    forced = row.forced_token()
    if forced is not None:
        return forced
    params = row.sampling
    logits = logits.clone()
    if row.constraint is not None and row.channel == "answer":
        logits = row.constraint.mask(logits)
    if row.banned_ids:
        logits[row.banned_ids] = float("-inf")
    if params.repetition_penalty != 1.0:
        logits = _apply_repetition_penalty(logits, history(), params.repetition_penalty)
    if params.greedy:
        return int(logits.argmax())
    probs = torch.softmax(_filter_top_k_top_p(logits / params.temperature, params), dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=row.generator))


def _apply_repetition_penalty(logits: torch.Tensor, history: torch.Tensor, penalty: float):
    history = history.to(logits.device)
    seen = logits.gather(0, history)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(0, history, seen)


def _filter_top_k_top_p(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    if 0 < params.top_k < logits.numel():
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= params.top_p
        mask = torch.zeros_like(drop).scatter(0, order, drop)
        logits = logits.masked_fill(mask, float("-inf"))
    return logits


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
