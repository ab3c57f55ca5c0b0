"""text-generation: decoder-only language models, dense or MoE, reasoning or not, custom code too."""

from __future__ import annotations

from llm_installer.check.families._common import (
    OPTIONAL_BITSANDBYTES,
    OPTIONAL_FLASH_ATTN,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    head_family,
)
from llm_installer.check.families._table import CONDITIONAL_GENERATION
from llm_installer.check.source import ModelSource
from llm_runtime.contract import TEXT_GENERATION


class TextGenerationFamily(TransformersFamily):
    """``…ForCausalLM``, ``…LMHeadModel``, decoder-only ``…ForConditionalGeneration``, or auto_map."""

    name = TEXT_GENERATION
    task = "text-generation"
    generative = True
    optional = (OPTIONAL_FLASH_ATTN, OPTIONAL_BITSANDBYTES)

    def matches(self, source: ModelSource, config: Config) -> bool:
        arch = architecture(config)
        family = head_family(arch)
        if family is not None:
            return family == self.name
        if arch.endswith(CONDITIONAL_GENERATION) and not config.get("is_encoder_decoder"):
            return True
        return auto_map_family(config) == self.name

    def details(self, source: ModelSource, config: Config) -> dict:
        """The attention head size: vLLM's CPU attention serves only some (installer/check/engines.py)."""
        text = config.get("text_config") or config
        heads = text.get("num_attention_heads")
        head_dim = text.get("head_dim") or (text.get("hidden_size", 0) // heads if heads else None)
        return {"head_dim": head_dim} if head_dim else {}
