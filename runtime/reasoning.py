"""Reasoning models: `<think>...</think>` tokens and chat templates with `enable_thinking`."""

from __future__ import annotations

from dataclasses import dataclass

THINK_START = "<think>"
THINK_END = "</think>"


@dataclass(frozen=True)
class ReasoningTokens:
    """The think markers of a tokenizer, as single token ids."""

    start_id: int
    end_id: int
    template_toggle: bool  # the chat template reads `enable_thinking`

    def starts_thinking(self, prompt_ids: list[int]) -> bool:
        """True when the prompt leaves a `<think>` open, so generation begins in thought."""
        last_start = _last_index(prompt_ids, self.start_id)
        return last_start > _last_index(prompt_ids, self.end_id)


def detect_reasoning(tokenizer) -> ReasoningTokens | None:
    """ReasoningTokens when `<think>` and `</think>` are single tokens of tokenizer, else None."""
    start, end = _single_token_id(tokenizer, THINK_START), _single_token_id(tokenizer, THINK_END)
    if start is None or end is None:
        return None
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    return ReasoningTokens(
        start_id=start, end_id=end, template_toggle="enable_thinking" in template
    )


def _single_token_id(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        return None
    return ids[0]


def _last_index(ids: list[int], token: int) -> int:
    for index in range(len(ids) - 1, -1, -1):
        if ids[index] == token:
            return index
    return -1
