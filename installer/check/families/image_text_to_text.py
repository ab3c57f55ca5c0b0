"""image-text-to-text: vision-language models (LLaVA in both formats, Fuyu, Qwen2.5-VL, Gemma 3/4 …)."""

from __future__ import annotations

import dataclasses

from llm_installer.check.families._common import (
    OPTIONAL_BITSANDBYTES,
    OPTIONAL_FLASH_ATTN,
    PILLOW,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    head_family,
    model_type,
    sub_config,
)
from llm_installer.check.families._table import (
    CONDITIONAL_GENERATION,
    IMAGE_TEXT_TYPES,
    VIDEO_PROCESSOR_TYPES,
)
from llm_installer.check.families.base import Detection, Requirement, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import IMAGE_TEXT_TO_TEXT, TEXT_GENERATION

# Sub-configs that carry a vision tower (vq_config: Chameleon/Emu3 image tokenizers;
# visual: Qwen-VL custom code; img_processor: Phi-3-vision custom code).
VISION_CONFIG_KEYS = (
    "vision_config",
    "vision_tower_config",
    "visual",
    "vision_encoder_config",
    "vq_config",
    "img_processor",
)
TORCHVISION = Requirement("torchvision", "the processor's video part, used for images too")
LLAVA_ORIGINAL_KEY = "mm_vision_tower"  # liuhaotian/llava-*: the LLaVA code base's own format
GENERATIVE_FAMILIES = (TEXT_GENERATION, IMAGE_TEXT_TO_TEXT)
LLAVA_ORIGINAL_WARNING = (
    "This is an original-format LLaVA checkpoint (mm_vision_tower in config.json): plain "
    "transformers cannot load it; it needs the LLaVA code base or a converted llava-hf repo."
)


class ImageTextToTextFamily(TransformersFamily):
    """A generative architecture with a vision tower: vision_config, mm_vision_tower, or a VLM type."""

    name = IMAGE_TEXT_TO_TEXT
    task = "image-text-to-text"
    generative = True
    packages = (PILLOW,)
    optional = (OPTIONAL_FLASH_ATTN, OPTIONAL_BITSANDBYTES)

    def matches(self, source: ModelSource, config: Config) -> bool:
        if config.get(LLAVA_ORIGINAL_KEY):
            return True
        arch = architecture(config)
        family = head_family(arch)
        if family is not None and family not in GENERATIVE_FAMILIES:
            return False
        if family == self.name or model_type(config) in IMAGE_TEXT_TYPES:
            return True
        return is_generative(arch, family, config) and vision_config(config) is not None

    def details(self, source: ModelSource, config: Config) -> dict:
        if config.get(LLAVA_ORIGINAL_KEY):
            return {"format": "llava-original", "vision_tower": config[LLAVA_ORIGINAL_KEY]}
        vision = vision_config(config) or {}
        text = sub_config(config, "text_config") or {}
        found = {
            "vision_model_type": vision.get("model_type"),
            "text_model_type": text.get("model_type"),
        }
        return {key: value for key, value in found.items() if value}

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        found = super().requirements(source, detection)
        if detection.model_type in VIDEO_PROCESSOR_TYPES:
            found = dataclasses.replace(found, architecture=(*found.architecture, TORCHVISION))
        if detection.details.get("format") != "llava-original":
            return found
        return dataclasses.replace(found, warnings=(LLAVA_ORIGINAL_WARNING, *found.warnings))


def vision_config(config: Config) -> Config | None:
    return next(filter(None, (sub_config(config, key) for key in VISION_CONFIG_KEYS)), None)


def is_generative(arch: str, family: str | None, config: Config) -> bool:
    """A causal-LM head, a ``…ForConditionalGeneration`` class, or a generative auto_map."""
    if family is not None or arch.endswith(CONDITIONAL_GENERATION):
        return True
    return auto_map_family(config) in GENERATIVE_FAMILIES
