"""One llama.cpp generation on a worker thread: our own loop over `Llama.generate`.

Why not `create_completion`: its loop hides the token ids, and structured output, logprobs and
exact usage all need them. Here a logits processor (first in llama.cpp's sampler chain, so it
sees the raw logits of the whole vocabulary in token order) notes the logprobs and masks what
the request's grammar forbids (llguidance over llama.cpp's own vocabulary, the same JSON Schema
subset and compact JSON as the transformers engine), and every sampled token is followed here:
the grammar advances, the text is decoded (whole UTF-8 characters) and stop strings are cut.
"""

from __future__ import annotations

import codecs
import functools
import random
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from llm_runtime.structured import GrammarFactory, JsonConstraint
from llm_runtime.threaded_stream import WorkerTextStream
from llm_runtime.values import FinishReason, TextDelta, TextRequest, TextResult, TokenLogprob, Usage

if TYPE_CHECKING:
    from llm_runtime.handlers.gguf import GgufHandler


class LlamaGrammars(GrammarFactory):
    """JSON constraints for a llama.cpp model: llguidance's view of its vocabulary (made once,
    on the first constrained request)."""

    def __init__(self, llm) -> None:
        super().__init__(llm, llm.n_vocab())

    @functools.cached_property
    def tokenizer(self):
        from llguidance.llamacpp import lltokenizer_from_vocab

        return lltokenizer_from_vocab(self.hf_tokenizer._model.vocab, n_vocab=self.vocab_size)


def allowed_tokens(constraint: JsonConstraint) -> np.ndarray:
    """The grammar's next-token mask as a bool array over the vocabulary."""
    bits = np.frombuffer(constraint.matcher.compute_bitmask(), dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[: constraint.vocab_size].astype(bool)


class LlamaStream(WorkerTextStream):
    """One llama.cpp completion on a worker thread, its text handed to the event loop."""

    def __init__(
        self, handler: GgufHandler, request: TextRequest, prompt: list[int], max_tokens: int,
        constraint: JsonConstraint | None = None,
    ) -> None:  # fmt: skip
        self._handler, self._request, self._prompt = handler, request, prompt
        self._max_tokens, self._constraint = max_tokens, constraint
        self._open_queue()
        self._tokens: list[int] = []
        self._text, self._sent, self._finish, self._cut = "", 0, "length", False
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._logprobs: list[TokenLogprob] = []
        self._logprobs_sent = 0
        self._step_logprobs: np.ndarray | None = None
        self._callback_error: Exception | None = None
        self._started = time.perf_counter()
        self._first_token_s: float | None = None
        handler.slot.reserve()
        threading.Thread(
            target=self._work_in, args=(handler.slot, self._run, self._done), daemon=True
        ).start()

    def _run(self) -> None:
        llm, sampling = self._handler.llm, self._request.sampling
        seed = sampling.seed
        llm.set_seed(seed if seed is not None else random.randrange(2**31))
        tokens = llm.generate(
            self._prompt, top_k=sampling.top_k, top_p=sampling.top_p, min_p=0.0,
            temp=0.0 if sampling.greedy else sampling.temperature,
            repeat_penalty=sampling.repetition_penalty, logits_processor=[self._observe],
        )  # fmt: skip
        try:
            for token in tokens:
                if self._follow(token):
                    return
        finally:
            tokens.close()

    def _observe(self, input_ids, logits: np.ndarray) -> np.ndarray:
        """The logits processor: once per sampled token, before the sampler chooses. An error
        here would vanish in llama.cpp's ctypes callback: it is kept for _follow to raise."""
        try:
            return self._process(logits)
        except Exception as exc:
            self._callback_error = exc
            return logits

    def _process(self, logits: np.ndarray) -> np.ndarray:
        if self._first_token_s is None:
            self._first_token_s = time.perf_counter() - self._started
        if self._request.logprobs is not None:
            shifted = logits.astype(np.float64) - logits.max()
            self._step_logprobs = shifted - np.log(np.exp(shifted).sum())
        if self._constraint is None:
            return logits
        allowed = allowed_tokens(self._constraint)
        width = min(allowed.size, logits.size)
        masked = np.full_like(logits, -np.inf)
        masked[:width] = np.where(allowed[:width], logits[:width], -np.inf)
        return masked

    def _follow(self, token: int) -> bool:
        """Take one sampled token; True when the generation is over."""
        import llama_cpp

        llm = self._handler.llm
        if self._callback_error is not None:
            raise self._callback_error
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            self._finish = "stop"
            return True
        self._tokens.append(token)
        if self._step_logprobs is not None:
            self._logprobs.append(self._logprob_entry(token))
        if self._constraint is not None:
            self._constraint.advance(token)
            if self._constraint.matcher.is_error():
                raise RuntimeError(f"grammar: {self._constraint.matcher.get_error()}")
        if self._add_text(self._utf8.decode(llm.detokenize([token]))):
            return True
        if self._constraint is not None and self._constraint.complete:
            self._finish = "stop"
        elif len(self._tokens) >= self._max_tokens:
            self._finish = "length"
        elif self._cancelled.is_set():
            self._finish = "cancelled"
        else:
            return False
        return True

    def _add_text(self, piece: str) -> bool:
        """Send the new text, less a tail that may start a stop string; True on a stop."""
        self._text += piece
        stops = self._request.stop
        if not stops:
            self._send(len(self._text))
            return False
        longest = max(map(len, stops))
        start = max(0, self._sent - longest)
        hits = [i for i in (self._text.find(s, start) for s in stops if s) if i >= 0]
        if hits:
            self._text = self._text[: min(hits)]
            self._send(len(self._text))
            self._finish, self._cut = "stop", True
            return True
        self._send(max(self._sent, len(self._text) - longest + 1))
        return False

    def _send(self, end: int, *, final: bool = False) -> None:
        new = self._text[self._sent : end]
        logprobs = tuple(self._logprobs[self._logprobs_sent :])
        if new or (final and logprobs):
            self._sent, self._logprobs_sent = end, len(self._logprobs)
            self._put(TextDelta(new, logprobs=logprobs))

    def _logprob_entry(self, token: int) -> TokenLogprob:
        """token's log-probability under the raw logits, with the likeliest alternatives."""
        values, count = self._step_logprobs, self._request.logprobs or 0
        assert values is not None, "called only while a step's logprobs are recorded"
        top = np.argpartition(-values, count - 1)[:count] if count else np.array([], dtype=int)
        top = top[np.argsort(-values[top])]
        alternatives = tuple(self._entry(int(t), values) for t in top)
        return TokenLogprob(*self._entry(token, values), top=alternatives)

    def _entry(self, token: int, values: np.ndarray) -> tuple[str, float, tuple[int, ...]]:
        raw = self._handler.llm.detokenize([token])
        return raw.decode(errors="replace"), max(float(values[token]), -9999.0), tuple(raw)

    def _done(self) -> None:
        if not self._cut:  # a character cut short by the end: shown as U+FFFD
            self._text += self._utf8.decode(b"", final=True)
        self._send(len(self._text), final=True)
        finish: FinishReason = self._finish  # type: ignore[assignment]
        count = len(self._tokens)
        metrics = self._handler.metrics
        metrics.inc("prompt_tokens_total", len(self._prompt), "Prefill tokens processed")
        metrics.inc("generation_tokens_total", count, "Tokens generated")
        self._result = TextResult(
            text=self._text,
            thinking="",
            finish_reason=finish,
            usage=Usage(len(self._prompt), count, answer_tokens=count),
            time_to_first_token_s=self._first_token_s,
            logprobs=tuple(self._logprobs) if self._request.logprobs is not None else None,
        )
        self._end()
