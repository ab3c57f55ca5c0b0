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
        histories = [
            _returning(input_ids[index, pad:]) for index, pad in enumerate(self.pad_lengths)
        ]
        for index, token in choose_tokens(self.rows, scores, histories).items():
            chosen[index] = token
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


def choose_tokens(
    rows: list[RowState], logits: torch.Tensor, histories: list[Callable[[], torch.Tensor]]
) -> dict[int, int]:
    """Next tokens of the rows that the batch-wide argmax does not decide, by row index.

    Rows with only sampling settings (temperature, top-k, top-p, repetition penalty) are
    decided together: a handful of batched operations and one copy back, whatever the batch
    size. Rows with a forced token, a grammar, banned ids or logprobs go one by one."""
    picks: dict[int, int] = {}
    together: list[int] = []
    for index, row in enumerate(rows):
        if row.finished or row.plain_greedy:
            continue
        alone = row.forced_token() is not None or row.constraint is not None
        if not alone and not row.banned_ids and row.top_logprobs is None:
            together.append(index)
            continue
        picks[index] = choose_token(row, logits[index], histories[index])
    if together:
        chosen = logits[together].float()
        params = [rows[i].sampling for i in together]
        penalties = [p.repetition_penalty for p in params]
        if any(p != 1.0 for p in penalties):
            chosen = penalize(chosen, [histories[i]() for i in together], penalties)
        tokens = draw(chosen, params, [rows[i].generator for i in together])
        picks.update(zip(together, tokens.tolist(), strict=True))
    return picks


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
        logits = penalize(logits[None], [history()], [params.repetition_penalty])[0]
    if params.greedy:
        return int(logits.argmax())
    return int(draw(logits[None], [params], [row.generator])[0])


def penalize(logits: torch.Tensor, histories: list[torch.Tensor], penalties: list[float]):
    """Repetition penalty (CTRL's) on a [rows, vocab] batch: each row's seen tokens' logits
    divided (positive) or multiplied (negative) by its penalty; 1.0 leaves a row as it was."""
    device = logits.device
    # Padded with each row's own first token: scattering a value twice writes the same value.
    padded = torch.nn.utils.rnn.pad_sequence(
        [h.to(device) for h in histories], batch_first=True, padding_value=-1
    )
    padded = torch.where(padded < 0, padded[:, :1], padded)
    factor = torch.tensor(penalties, device=device, dtype=logits.dtype)[:, None]
    seen = logits.gather(1, padded)
    seen = torch.where(seen > 0, seen / factor, seen * factor)
    return logits.scatter(1, padded, seen)


def draw(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator]
) -> torch.Tensor:
    """One token per row of a [rows, vocab] batch, on the logits' device: greedy rows take the
    argmax; the others sample from softmax(logits / temperature) cut to top-k and top-p.

    Sampling is by inverse CDF over the ranked distribution: one uniform number per row from
    the row's own (seeded) CPU generator, so a seed repeats its tokens at any batch size, and
    only those numbers travel to the device."""
    device, vocab = logits.device, logits.shape[-1]
    # Greedy rows rank one token; a top-k of 0 (or beyond the vocabulary) means no cut.
    cuts = [1 if p.greedy else p.top_k if 0 < p.top_k < vocab else vocab for p in params]
    greedy = torch.tensor([p.greedy for p in params], device=device)
    temperature = torch.tensor([1.0 if p.greedy else p.temperature for p in params], device=device)
    top_k = torch.tensor(cuts, device=device)[:, None]
    top_p = torch.tensor([p.top_p for p in params], device=device)[:, None]
    uniform = torch.cat([torch.rand(1, generator=g) for g in generators]).to(device)

    scaled = logits / temperature[:, None]
    if max(cuts) < vocab:  # every row cut to top-k: only the widest cut needs ranking
        ranked, order = torch.topk(scaled, max(cuts), dim=-1)
    else:
        ranked, order = torch.sort(scaled, dim=-1, descending=True)
    kth = ranked.gather(1, top_k - 1)
    ranked = ranked.masked_fill(ranked < kth, float("-inf"))  # ties with the k-th stay in
    probs = torch.softmax(ranked, dim=-1)
    cumulative = probs.cumsum(dim=-1)
    # Keep the smallest head whose mass reaches top_p (the first token always stays).
    beyond = (cumulative - probs >= top_p) & (top_p < 1.0)
    probs = probs.masked_fill(beyond, 0.0)
    cumulative = probs.cumsum(dim=-1)
    target = uniform[:, None] * cumulative[:, -1:]
    position = torch.searchsorted(cumulative, target).clamp_(max=ranked.shape[-1] - 1)
    sampled = order.gather(1, position)[:, 0]
    return torch.where(greedy, order[:, 0], sampled)


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
