"""text2text-generation: encoder-decoder language models (T5, BART, Marian, Pegasus …)."""

from __future__ import annotations

from llm_installer.check.families._common import (
    OPTIONAL_BITSANDBYTES,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    head_family,
    model_type,
)
from llm_installer.check.families._table import (
    CONDITIONAL_GENERATION,
    ENCODER_DECODER,
    TEXT2TEXT_TYPES,
)
from llm_installer.check.source import ModelSource
from llm_runtime.contract import TEXT2TEXT


class Text2TextFamily(TransformersFamily):
    """A seq2seq head, a seq2seq model_type, or ``is_encoder_decoder`` with a generation class."""

    name = TEXT2TEXT
    text_input = True
    task = "text2text-generation"
    optional = (OPTIONAL_BITSANDBYTES,)

    def matches(self, source: ModelSource, config: Config) -> bool:
        arch = architecture(config)
        family = head_family(arch)
        if family is not None:
            return family == self.name
        if model_type(config) in TEXT2TEXT_TYPES:
            return True
        if config.get("is_encoder_decoder") and arch.endswith(
            (*CONDITIONAL_GENERATION, *ENCODER_DECODER)
        ):
            return True
        return auto_map_family(config) == self.name

    def details(self, source: ModelSource, config: Config) -> dict:
        return {"is_encoder_decoder": True}
