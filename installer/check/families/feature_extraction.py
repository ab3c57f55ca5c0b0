"""feature-extraction: vision and audio backbones without a task head (``ViTModel``, ``Wav2Vec2Model``)."""

from __future__ import annotations

from llm_installer.check.families._common import (
    AUDIO,
    PILLOW,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    is_bare_model,
    transformers_requirements,
)
from llm_installer.check.families.base import Detection, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import FEATURE_EXTRACTION

VISION_KEYS = ("image_size", "patch_size", "num_channels", "vision_config")
AUDIO_KEYS = ("num_mel_bins", "conv_dim", "feat_extract_norm", "input_feat_per_channel")


class FeatureExtractionFamily(TransformersFamily):
    """A bare backbone class whose config takes images or audio (text backbones are ``embedding``)."""

    name = FEATURE_EXTRACTION
    task = "image-feature-extraction"

    def matches(self, source: ModelSource, config: Config) -> bool:
        arch = architecture(config)
        bare = is_bare_model(arch) or arch.endswith("Backbone")
        return bare and auto_map_family(config) is None and modality(config) is not None

    def task_for(self, config: Config) -> str:
        return "image-feature-extraction" if modality(config) == "image" else "feature-extraction"

    def details(self, source: ModelSource, config: Config) -> dict:
        return {"modality": modality(config), "hidden_size": config.get("hidden_size")}

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        extra = (PILLOW,) if detection.details.get("modality") == "image" else AUDIO
        return transformers_requirements(source, detection, extra=extra)


def modality(config: Config) -> str | None:
    """'audio' or 'image' from the config's input keys, None for text."""
    if any(key in config for key in AUDIO_KEYS):
        return "audio"
    if any(key in config for key in VISION_KEYS):
        return "image"
    return None
