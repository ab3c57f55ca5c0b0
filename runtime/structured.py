"""Constrained decoding for the transformers engine: JSON (any object or a schema) via llguidance.

Why llguidance (over xgrammar and outlines): it is one 3 MB wheel with no dependencies (xgrammar
pulls triton into every CPU image, outlines pulls outlines-core, jinja2 pins and more), it builds
a schema's grammar lazily in microseconds (no per-schema compile step to cache: every request may
bring its own schema), its matcher is per sequence (one per batch row, which is what our
continuous batcher needs) and computes the next-token mask on the CPU without torch.compile, and
vLLM, SGLang and llama.cpp use it too (vLLM's `guidance` backend), so both engines enforce the
same JSON Schema subset. Whitespace is off (compact JSON, as OpenAI's strict mode replies), so a
random-weight model cannot wander in blanks until max_tokens.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

from llm_runtime.errors import InvalidRequest
from llm_runtime.values import OutputSpec, ToolSpec

# Compact JSON: no optional whitespace; separators as json.dumps(separators=(",", ":")).
COMPACT: JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ",",
    "key_separator": ":",
}
ANY_OBJECT = {"type": "object"}
MAX_PARALLEL_CALLS = 4  # `required` with parallel calls: a bound, so a list cannot run forever


def output_schema(output: OutputSpec) -> dict | None:
    """The JSON schema a reply must match (None: free text)."""
    if output.tool_choice == "function":
        return tool_parameters(_named_tool(output))
    if output.tool_choice == "required" and output.tools:
        return required_calls_schema(output.tools, output.parallel_tool_calls)
    if output.response_format == "json_schema":
        return output.json_schema or ANY_OBJECT
    if output.response_format == "json_object":
        return ANY_OBJECT
    return None


def tool_parameters(tool: ToolSpec) -> dict:
    return tool.parameters or {"type": "object", "properties": {}}


def required_calls_schema(tools: tuple[ToolSpec, ...], parallel: bool) -> dict:
    """A JSON list of `{"name", "arguments"}` calls, each matching one tool's parameters."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": tool_parameters(t)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return {
        "type": "array",
        "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
        "minItems": 1,
        "maxItems": min(len(tools), MAX_PARALLEL_CALLS) if parallel else 1,
    }


def _named_tool(output: OutputSpec) -> ToolSpec:
    return next(t for t in output.tools if t.name == output.tool_name)


class GrammarFactory:
    """Builds per-row JSON constraints for one tokenizer (its llguidance view is made once)."""

    def __init__(self, tokenizer, vocab_size: int) -> None:
        self.hf_tokenizer, self.vocab_size = tokenizer, vocab_size

    @functools.cached_property
    def tokenizer(self):
        import llguidance.hf

        return llguidance.hf.from_tokenizer(self.hf_tokenizer, n_vocab=self.vocab_size)

    def token_bytes(self, token: int) -> bytes:
        """The exact bytes of one token (a piece of a UTF-8 character stays that piece)."""
        return self.tokenizer.decode_bytes([token])

    def constraint(self, schema: dict) -> JsonConstraint:
        """A fresh matcher for schema; a schema llguidance cannot enforce is a 400."""
        import llguidance

        try:
            tokenizer = self.tokenizer
        except ValueError as exc:  # a slow (Python) tokenizer
            raise InvalidRequest(
                f"Structured output needs a fast tokenizer; this model's cannot be used: {exc}"
            ) from None
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=COMPACT)
        except ValueError as exc:
            raise InvalidRequest(f"The JSON schema is not valid JSON: {exc}") from None
        error = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
        if error:
            raise InvalidRequest(
                f"This JSON schema cannot be enforced: {error.strip()[:300]}. Simplify the schema "
                "(JSON Schema draft 2020-12: type, properties, required, enum, const, anyOf, "
                "items, min/max...)."
            )
        return JsonConstraint(llguidance.LLMatcher(tokenizer, grammar), self.vocab_size)


class JsonConstraint:
    """One row's grammar state: masks the logits to the allowed tokens, follows chosen ones."""

    def __init__(self, matcher, vocab_size: int) -> None:
        self.matcher, self.vocab_size = matcher, vocab_size

    def allowed(self) -> torch.Tensor:
        """A bool tensor over the vocabulary: True where the grammar allows the token."""
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: self.vocab_size].astype(bool)
        return torch.from_numpy(allowed)

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        allowed = self.allowed().to(logits.device)
        width = min(allowed.numel(), logits.numel())
        keep = torch.zeros(logits.numel(), dtype=torch.bool, device=logits.device)
        keep[:width] = allowed[:width]
        return logits.masked_fill(~keep, float("-inf"))

    def advance(self, token: int) -> None:
        self.matcher.consume_token(token)

    @property
    def complete(self) -> bool:
        """True once the grammar admits nothing more (the JSON value is closed)."""
        return self.matcher.is_stopped()


def compact_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
