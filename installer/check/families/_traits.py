"""Traits read from configs and tokenizer files: mixture-of-experts and reasoning (``<think>``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llm_installer.check.source import ModelSource
from llm_runtime import moe_keys
from llm_runtime.moe_keys import EXPERT_COUNT_KEYS, EXPERTS_PER_TOKEN_KEYS

EXPERT_SIZE_KEYS = (*moe_keys.EXPERT_SIZE_KEYS, "intermediate_size")
MOE_PERIOD_KEYS = ("moe_layer_freq", "decoder_sparse_step", "expert_layer_period")
NESTED_TEXT_CONFIGS = ("text_config", "language_config", "llm_config", "thinker_config")

REASONING_PATTERNS = (
    re.compile(r"</?(?:\w+:)?think>"),  # <think>, </think>, <seed:think>
    re.compile(r"\benable_thinking\b"),
    re.compile(r"\breasoning_effort\b"),
    re.compile(r"\bthinking_budget\b"),
)
REASONING_CONFIG_KEYS = ("reasoning_parser", "thinking_config", "enable_thinking")


def text_configs(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The config itself, then its nested language-model configs (``text_config`` …)."""
    yield config
    for key in NESTED_TEXT_CONFIGS:
        if isinstance(config.get(key), dict):
            yield config[key]


def first_int(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` holding a positive integer."""
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def moe_details(config: dict[str, Any]) -> dict[str, Any] | None:
    """Expert counts and routed-expert parameter counts of an MoE config, or None when dense."""
    for part in text_configs(config):
        experts = first_int(part, EXPERT_COUNT_KEYS)
        if experts is not None and experts > 1 and part.get("enable_moe_block", True):
            return _describe_experts(part, experts)
    return None


def _describe_experts(config: dict[str, Any], experts: int) -> dict[str, Any]:
    per_token = first_int(config, EXPERTS_PER_TOKEN_KEYS)
    details: dict[str, Any] = {"num_experts": experts, "experts_per_token": per_token}
    shared = first_int(config, ("n_shared_experts", "num_shared_experts"))
    if shared:
        details["shared_experts"] = shared
    hidden, size = (
        first_int(config, ("hidden_size", "d_model")),
        first_int(config, EXPERT_SIZE_KEYS),
    )
    layers = _moe_layers(config)
    if hidden and size and layers and per_token:
        # Gated MLP experts hold 3 matrices of hidden x size; active = total - routed + chosen.
        one_expert = 3 * hidden * size
        details["moe_layers"] = layers
        details["routed_expert_params"] = one_expert * experts * layers
        details["active_expert_params"] = one_expert * per_token * layers
    return details


def _moe_layers(config: dict[str, Any]) -> int | None:
    layers = first_int(config, ("num_hidden_layers", "num_layers", "n_layer"))
    if layers is None:
        return None
    dense_first = config.get("first_k_dense_replace") or 0
    period = first_int(config, MOE_PERIOD_KEYS) or 1
    return max(layers - int(dense_first), 0) // period or None


def is_reasoning(source: ModelSource, config: dict[str, Any] | None) -> bool:
    """True when the chat template or tokenizer carries thinking markers, or the config says so."""
    if config and any(
        key in part for part in text_configs(config) for key in REASONING_CONFIG_KEYS
    ):
        return True
    return any(
        pattern.search(text) for text in _template_texts(source) for pattern in REASONING_PATTERNS
    )


def has_chat_template(source: ModelSource) -> bool:
    """True when the repo ships a chat template (in tokenizer_config.json or its own file)."""
    return any(True for _ in _template_texts(source, added_tokens=False))


def _template_texts(source: ModelSource, *, added_tokens: bool = True) -> Iterator[str]:
    yield from (text for text in source.texts.values() if text)
    tokenizer = source.config("tokenizer_config.json") or {}
    template = tokenizer.get("chat_template")
    if isinstance(template, str):
        yield template
    elif isinstance(template, list):
        yield from (t["template"] for t in template if isinstance(t, dict) and "template" in t)
    if added_tokens:
        decoder = tokenizer.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            yield " ".join(
                str(t.get("content", "")) for t in decoder.values() if isinstance(t, dict)
            )
