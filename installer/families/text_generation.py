"""text-generation: decoder-only language models, dense or MoE, reasoning or not, custom code too."""

from __future__ import annotations

from llm_installer.families._common import (
    OPTIONAL_BITSANDBYTES,
    OPTIONAL_FLASH_ATTN,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    head_family,
)
from llm_installer.families._table import CONDITIONAL_GENERATION
from llm_installer.source import ModelSource


class TextGenerationFamily(TransformersFamily):
    """``…ForCausalLM``, ``…LMHeadModel``, decoder-only ``…ForConditionalGeneration``, or auto_map."""

    name = "text-generation"
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
